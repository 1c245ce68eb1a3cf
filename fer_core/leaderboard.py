"""Leaderboard lines from meta.json alone: no model, no tensor, no torch import (the app's first page)."""

from __future__ import annotations

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
