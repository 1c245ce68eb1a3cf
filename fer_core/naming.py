"""Short display names for checkpoints: what the app shows in pickers, legends and tables, where the timestamped
ids (`keras_cnn_wide-fer2013-20261123-090044`) are cut off, above all on a phone. The ids stay the keys, in
tooltips and in every export."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from .records import CheckpointMeta

if TYPE_CHECKING:
    from .external import ExternalSummary

LABEL_NAMES = {"fer2013": "FER2013", "ferplus": "FER+"}


def base_name(meta: CheckpointMeta) -> str:
    """Architecture and label set: `resnet18 · FER2013`."""
    return f"{meta.model} · {LABEL_NAMES.get(meta.data.label_source, meta.data.label_source)}"


def _created(meta: CheckpointMeta, fmt: str) -> str:
    try:
        return datetime.fromisoformat(meta.created_at).strftime(fmt)
    except ValueError:
        return meta.id


def _robust(meta: CheckpointMeta) -> str:
    """What makes a checkpoint a robustness variant: its robust augmentation preset, blur-pooling."""
    cfg = meta.config
    return " ".join(
        t for t in (cfg.augment if cfg.augment.startswith("robust") else "", "blur-pool" if cfg.blur_pool else "") if t
    )


# Tags that tell checkpoints of one base name apart, tried in order until every tag in the group differs; one of
# them may be empty (that checkpoint keeps the base name: a user's run beside its study trials or variants).
_TAGGERS: tuple[Callable[[CheckpointMeta], str], ...] = (
    lambda m: m.study.trial if m.study else "",
    lambda m: f"{m.study.study} {m.study.trial}" if m.study else "",  # trials of two studies share trial ids
    _robust,
    lambda m: _created(m, "%d %b"),
    lambda m: _created(m, "%d %b %H:%M"),
    lambda m: m.id,
)


def display_names(metas: Iterable[CheckpointMeta], keep: frozenset[str] = frozenset()) -> dict[str, str]:
    """id -> short name, unique within `metas`: the base name, plus a tag where several share it (their study
    trial, else their study and trial, else their robust training, else the day they were trained, else day and
    minute, else the id). A checkpoint in `keep` (the shipped ones) keeps its base name whatever else is trained,
    so its name never changes under the user; with several of one base, the first."""
    groups: dict[str, list[CheckpointMeta]] = {}
    for meta in metas:
        groups.setdefault(base_name(meta), []).append(meta)
    names: dict[str, str] = {}
    for base, group in groups.items():
        kept = next((m for m in group if m.id in keep), None)
        rest = [m for m in group if m is not kept]
        if kept is not None:
            names[kept.id] = base
        if len(group) == 1 or not rest:
            names |= {m.id: base for m in rest}
            continue
        names |= {m.id: f"{base} · {t}" if t else base for m, t in zip(rest, _tags(rest, kept is None), strict=True)}
    return names


def _tags(group: list[CheckpointMeta], one_may_be_empty: bool) -> list[str]:
    """The first tagger's tags that tell the group apart (none empty where the base name is taken)."""
    for tag in _TAGGERS:
        tags = [tag(m) for m in group]
        if len(set(tags)) == len(tags) and (one_may_be_empty or all(tags)):
            return tags
    raise AssertionError("checkpoint ids are unique")  # the last tagger is the id


def dataset_names(summaries: dict[str, ExternalSummary]) -> dict[str, str]:
    """fingerprint -> a dataset of the user's by its own name; two of one name are told apart by their size, and
    only where that fails by their fingerprint."""
    names = Counter(s.name for s in summaries.values())
    sizes = Counter((s.name, s.faces) for s in summaries.values())
    out = {}
    for fingerprint, s in summaries.items():
        if names[s.name] == 1:
            out[fingerprint] = s.name
        elif sizes[s.name, s.faces] == 1:
            out[fingerprint] = f"{s.name} · {s.faces} faces"
        else:
            out[fingerprint] = f"{s.name} · {s.faces} faces · {fingerprint[:6]}"
    return out
