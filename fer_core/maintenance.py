"""Upkeep of a checkpoint store after the code or the machine changed: efficiency re-measured on this machine, and
stored test predictions re-derived from the saved weights. The CLI's `checkpoints --measure` and `--rederive`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .classifier import load_checkpoint
from .efficiency import efficiency
from .evaluation import compute_metrics
from .records import TestMetrics
from .store import CheckpointError, annotate_checkpoint, dataset_for, list_checkpoints, replace_test_predictions


def remeasure(root: Path | None = None) -> list[str]:
    """MACs and CPU speed of every usable checkpoint, measured again on this machine; returns their ids."""
    done = []
    for info in list_checkpoints(root):
        if info.ok:
            clf = load_checkpoint(info.id, root)
            annotate_checkpoint(info.id, root, efficiency=efficiency(clf.model, clf.input))
            done.append(info.id)
    return done


@dataclass(frozen=True)
class Rederived:
    checkpoint: str
    before: TestMetrics
    after: TestMetrics


def rederive(data_path: str | Path, root: Path | None = None) -> list[Rederived]:
    """Every checkpoint's stored test predictions and metrics, recomputed from its weights as saved (on the CPU, as
    the app and bench/accuracy.py run them). Every checkpoint's data is checked first: one trained on other data
    (another fingerprint) stops it before anything is rewritten."""
    jobs = []
    for info in list_checkpoints(root):
        if info.meta is not None:
            data = dataset_for(info.meta, data_path)
            if data.fingerprint != info.meta.data.fingerprint:
                raise CheckpointError(f"{info.id} was trained on other data ({info.meta.data.fingerprint}); nothing rewritten")
            jobs.append((info.id, info.meta, data))
    out = []
    for cid, meta, data in jobs:
        predictions = load_checkpoint(cid, root).evaluate(data, meta.test_split)
        metrics = compute_metrics(predictions).headline()
        replace_test_predictions(cid, predictions, metrics, root)
        out.append(Rederived(cid, meta.test_metrics, metrics))
    return out
