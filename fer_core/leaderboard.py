"""Leaderboard lines, and the checkpoints picked by default, from meta.json alone: no model, no tensor, no torch
import (the app's first page). The default ensemble's line, which needs stored predictions, is kept as a file in
the store."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import write_text_atomically
from .records import CheckpointMeta, Interval, Predictions

if TYPE_CHECKING:
    from .evaluation import EnsembleResult


@dataclass(frozen=True)
class LeaderboardRow:
    id: str
    architecture: str
    test_accuracy: float
    macro_f1: float
    disgust_recall: float | None  # None for class sets without disgust
    parameters_m: float
    mmacs: float | None  # None until measured
    cpu_latency_ms: float | None
    training_time_min: float
    epochs: int  # an ensemble's: its members' together, like its training time
    labels: str
    dataset: str
    device: str
    date: str
    card: str
    members: tuple[str, ...] = ()  # an ensemble's checkpoints (empty for a checkpoint's own line)
    accuracy_ci: Interval | None = None  # an ensemble's bootstrap 95% (a checkpoint's needs its predictions)


def row_from_json(saved: dict) -> LeaderboardRow:
    """A line as `dataclasses.asdict` wrote it to JSON (lists back to tuples, the interval to its record)."""
    ci = saved.get("accuracy_ci")
    return LeaderboardRow(**{**saved, "members": tuple(saved["members"]), "accuracy_ci": Interval(**ci) if ci else None})


def leaderboard_row(meta: CheckpointMeta) -> LeaderboardRow:
    """One leaderboard line from a checkpoint's meta.json."""
    m, eff = meta.test_metrics, meta.efficiency
    return LeaderboardRow(
        id=meta.id,
        architecture=meta.model,
        test_accuracy=m.accuracy,
        macro_f1=m.macro_f1,
        disgust_recall=m.per_class_accuracy.get("disgust"),
        parameters_m=meta.parameters / 1e6,
        mmacs=eff.macs / 1e6 if eff else None,
        cpu_latency_ms=eff.latency_ms_b1 if eff else None,
        training_time_min=meta.train_time_s / 60,
        epochs=meta.epochs_run,
        labels=meta.data.label_source,
        dataset=f"{meta.data.source} ({meta.data.label_source})",
        device=meta.device,
        date=meta.created_at[:10],
        card=meta.card,
    )


def ensemble_row(members: Sequence[CheckpointMeta], result: EnsembleResult) -> LeaderboardRow:
    """An ensemble as a leaderboard line: accuracy from its stored predictions, cost the sum of its members' (each
    face runs through all of them)."""
    m, first = result.metrics, members[0]
    measured = all(meta.efficiency for meta in members)
    return LeaderboardRow(
        id="ensemble",
        architecture=f"mean of {len(members)}",
        test_accuracy=m.accuracy,
        macro_f1=m.macro_f1,
        disgust_recall=m.per_class_accuracy.get("disgust"),
        parameters_m=sum(meta.parameters for meta in members) / 1e6,
        mmacs=sum(meta.efficiency.macs for meta in members if meta.efficiency) / 1e6 if measured else None,
        cpu_latency_ms=sum(meta.efficiency.latency_ms_b1 for meta in members if meta.efficiency) if measured else None,
        training_time_min=sum(meta.train_time_s for meta in members) / 60,
        epochs=sum(meta.epochs_run for meta in members),
        labels=first.data.label_source,
        dataset=f"{first.data.source} ({first.data.label_source})",
        device=first.device,
        date=max(meta.created_at for meta in members)[:10],
        card="The default ensemble: " + ", ".join(meta.model for meta in members),
        members=tuple(meta.id for meta in members),
        accuracy_ci=result.accuracy_interval(),
    )


WEAK_POINTS = 10.0  # a checkpoint this many accuracy points below the best of its class list is left out of ensembles


def _largest_class_list(metas: Iterable[CheckpointMeta]) -> list[CheckpointMeta]:
    """The checkpoints of the most common class list (their probabilities can be averaged)."""
    groups: dict[tuple[str, ...], list[CheckpointMeta]] = {}
    for meta in metas:
        groups.setdefault(meta.classes, []).append(meta)
    return max(groups.values(), key=len) if groups else []


def ranked_checkpoints(metas: Iterable[CheckpointMeta]) -> list[str]:
    """The most common class list's checkpoints, best test accuracy first (other class lists are not comparable)."""
    return [m.id for m in sorted(_largest_class_list(metas), key=lambda m: -m.test_metrics.accuracy)]


@dataclass(frozen=True)
class MovingDefaults:
    """The models Live and Video run unless the user picks others, and why these."""

    ids: list[str]
    reason: str
    mce: dict[str, float]  # of the chosen, where measured


def _latency(meta: CheckpointMeta) -> float:
    return meta.efficiency.latency_ms_b1 if meta.efficiency else float("inf")


def moving_defaults(metas: Iterable[CheckpointMeta], mce: dict[str, float], n: int = 3, pool: int = 5) -> MovingDefaults:
    """Live's and Video's default models: the `n` fastest (measured CPU latency) of the `pool` most robust (lowest
    mCE) of the most common class list. Every frame runs them all, on faces as webcams and streams degrade them.
    Models without a measured mCE are left out; with fewer than `n` measured, the `n` fastest, and the reason says so."""
    group = _largest_class_list(metas)
    measured = sorted((m for m in group if m.id in mce), key=lambda m: mce[m.id])
    if len(measured) < n:
        ids = [m.id for m in sorted(group, key=_latency)[:n]]
        reason = f"the {min(n, len(group))} fastest: robustness is measured for {len(measured)} of {len(group)} models"
    else:
        ids = [m.id for m in sorted(measured[:pool], key=_latency)[:n]]
        reason = f"the {n} fastest of the {min(pool, len(measured))} most robust (lowest mCE)"
    return MovingDefaults(ids, reason, {cid: mce[cid] for cid in ids if cid in mce})


def default_ensemble(metas: Iterable[CheckpointMeta]) -> list[str]:
    """Checkpoints of the most common class list within WEAK_POINTS of its best test accuracy: an ensemble that
    a 44% AlexNet or a one-epoch run does not drag down."""
    group = _largest_class_list(metas)
    if not group:
        return []
    best = max(m.test_metrics.accuracy for m in group)
    return [m.id for m in group if 100 * (best - m.test_metrics.accuracy) <= WEAK_POINTS]


ENSEMBLE_LINE_FILE = ".ensemble-line.json"
ENSEMBLE_LINE_VERSION = 2  # 2: the ensemble's epochs are its members' together (1 had none)


def stored_ensemble_line(
    root: Path, metas: Mapping[str, CheckpointMeta], predictions: Callable[[str], Predictions], state: object
) -> LeaderboardRow | None:
    """The default ensemble's leaderboard line, kept in the store as JSON with `state` (any JSON-able key of the
    store's state it was computed for): a cold start then draws it without importing scikit-learn (~1.3 s on a
    small CPU, bench/RESULTS.md "The app"). Computed again for another state; a read-only store still gets it."""
    file, key = root / ENSEMBLE_LINE_FILE, json.loads(json.dumps(state))
    try:
        saved = json.loads(file.read_text(encoding="utf-8"))
        if saved["signature"] == key and saved.get("version") == ENSEMBLE_LINE_VERSION:
            return row_from_json(saved["row"]) if saved["row"] else None
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, another store's, or damaged: computed again
    row = _ensemble_line(metas, predictions)
    with contextlib.suppress(OSError):
        write_text_atomically(
            file, json.dumps({"version": ENSEMBLE_LINE_VERSION, "signature": key, "row": asdict(row) if row else None})
        )
    return row


def _ensemble_line(metas: Mapping[str, CheckpointMeta], predictions: Callable[[str], Predictions]) -> LeaderboardRow | None:
    from .evaluation import EnsembleError, evaluate_ensemble

    members = default_ensemble(metas.values())
    try:
        result = evaluate_ensemble({cid: predictions(cid) for cid in members})
    except EnsembleError:  # fewer than two, or tested on other faces: no line
        return None
    return ensemble_row([metas[cid] for cid in members], result)
