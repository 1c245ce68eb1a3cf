"""Short display names for checkpoints: what the app shows in pickers, legends and tables, where the timestamped
ids (`keras_cnn_wide-fer2013-20261123-090044`) are cut off, above all on a phone. The ids stay the keys, in
tooltips and in every export."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from .records import CheckpointMeta

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
# them may be empty (that checkpoint keeps the base name: a shipped model beside its study trials or variants).
_TAGGERS: tuple[Callable[[CheckpointMeta], str], ...] = (
    lambda m: m.study.trial if m.study else "",
    _robust,
    lambda m: _created(m, "%d %b"),
    lambda m: _created(m, "%d %b %H:%M"),
    lambda m: m.id,
)


def display_names(metas: Iterable[CheckpointMeta]) -> dict[str, str]:
    """id -> short name, unique within `metas`: the base name, plus a tag where several share it (their study
    trial, else their robust training, else the day they were trained, else day and minute, else the id)."""
    groups: dict[str, list[CheckpointMeta]] = {}
    for meta in metas:
        groups.setdefault(base_name(meta), []).append(meta)
    names: dict[str, str] = {}
    for base, group in groups.items():
        if len(group) == 1:
            names[group[0].id] = base
            continue
        tags = next(t for t in ([tag(m) for m in group] for tag in _TAGGERS) if len(set(t)) == len(t))
        names |= {m.id: f"{base} · {t}" if t else base for m, t in zip(group, tags, strict=True)}
    return names
