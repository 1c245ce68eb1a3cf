"""Leaderboard lines, and the checkpoints picked by default, from meta.json alone: no model, no tensor, no torch
import (the app's first page)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .records import CheckpointMeta


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
    epochs: int
    labels: str
    dataset: str
    device: str
    date: str
    card: str


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


def fastest_checkpoints(metas: Iterable[CheckpointMeta], n: int = 3) -> list[str]:
    """The `n` fastest checkpoints (measured CPU latency) of the most common class list: live and video default."""
    group = sorted(_largest_class_list(metas), key=lambda m: m.efficiency.latency_ms_b1 if m.efficiency else float("inf"))
    return [m.id for m in group[:n]]


def default_ensemble(metas: Iterable[CheckpointMeta]) -> list[str]:
    """Checkpoints of the most common class list within WEAK_POINTS of its best test accuracy: an ensemble that
    a 44% AlexNet or a one-epoch run does not drag down."""
    group = _largest_class_list(metas)
    if not group:
        return []
    best = max(m.test_metrics.accuracy for m in group)
    return [m.id for m in group if 100 * (best - m.test_metrics.accuracy) <= WEAK_POINTS]
