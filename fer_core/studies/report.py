"""A study's results from its trials' stored test predictions (no model is run): what a reviewer asks for.

Per trial: PrivateTest accuracy and macro F1 with a bootstrap 95% interval over the test faces. Per point (the
trials of one combination of axis values, one per seed): mean and standard deviation over seeds, a bootstrap 95%
interval of the seed-mean accuracy over the test faces, and McNemar's exact test against the baseline point on the
same faces (each point's seed-averaged probabilities), Holm-corrected across the study's comparisons.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation import Interval, accuracy_interval, mcnemar
from ..records import CheckpointMeta, Predictions
from ..store import default_root, list_checkpoints, load_predictions
from .runs import TrialStatus, read_run, read_spec, read_trials, study_dir
from .spec import Range


@dataclass(frozen=True)
class TrialResult:
    trial: str
    point: dict[str, Any]
    seed: int
    checkpoint: str
    accuracy: float
    accuracy_ci: Interval
    macro_f1: float
    best_epoch: int
    epochs_run: int
    train_time_s: float
    device: str


@dataclass(frozen=True)
class PointResult:
    point: dict[str, Any]
    baseline: bool
    seeds: int
    accuracy_mean: float
    accuracy_std: float  # over seeds (0 with one seed)
    accuracy_ci: Interval  # bootstrap over the test faces of the seed-mean accuracy
    macro_f1_mean: float
    macro_f1_std: float
    p_value: float | None  # McNemar against the baseline point; None for the baseline itself
    p_holm: float | None  # Holm-adjusted across every comparison of the study
    significant: bool  # p_holm < 0.05


@dataclass(frozen=True)
class StudyReport:
    study_id: str
    study: str
    profile: str
    axes: dict[str, list[Any] | Range]  # the values of a listed axis, or a range
    baseline: dict[str, Any]
    points: list[PointResult]
    trials: list[TrialResult]
    failed: list[TrialStatus]  # failed, or stopped early by ASHA (their error says which)
    unfinished: list[str]  # trials neither done nor failed (queued or running)


def point_label(point: dict[str, Any]) -> str:
    """A point as people read it: `optimizer=adam, lr=0.00235` (a searched float to 3 significant digits)."""
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={json.dumps(v)}".replace('"', "") for k, v in point.items()
    )


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error), in the input order; none of the chosen libraries has it."""
    order = np.argsort(p_values)
    adjusted = np.empty(len(p_values))
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()


def _trial(meta: CheckpointMeta, predictions: Predictions, axes: list[str]) -> TrialResult:
    assert meta.study is not None
    correct = (predictions.predicted == predictions.labels).astype(float)
    point = meta.study.point
    return TrialResult(
        trial=meta.study.trial,
        point={k: point[k] for k in sorted(point, key=lambda k: axes.index(k) if k in axes else len(axes))},  # file order
        seed=meta.study.seed,
        checkpoint=meta.id,
        accuracy=meta.test_metrics.accuracy,
        accuracy_ci=accuracy_interval(correct),
        macro_f1=meta.test_metrics.macro_f1,
        best_epoch=meta.best_epoch,
        epochs_run=meta.epochs_run,
        train_time_s=meta.train_time_s,
        device=meta.device,
    )


def _key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True)  # tuples of the file and lists of meta.json give the same key


def _points(trials: list[TrialResult], predictions: dict[str, Predictions], baseline: dict[str, Any]) -> list[PointResult]:
    """Group trials by point; each point against the baseline (McNemar on seed-averaged predictions, Holm)."""
    groups: dict[str, list[TrialResult]] = {}
    for t in trials:
        groups.setdefault(_key(t.point), []).append(t)
    labels = next(iter(predictions.values())).labels
    mean_probs = {k: np.mean([predictions[t.checkpoint].probs for t in ts], axis=0) for k, ts in groups.items()}
    base = _key(baseline)
    compared = [k for k in groups if k != base and base in groups]
    raw_p = {k: mcnemar(mean_probs[k].argmax(1), mean_probs[base].argmax(1), labels).p_value for k in compared}
    adjusted = dict(zip(compared, holm([raw_p[k] for k in compared]), strict=True))
    points = []
    for key, ts in groups.items():
        correct = np.mean([predictions[t.checkpoint].predicted == labels for t in ts], axis=0)
        accs, f1s = [t.accuracy for t in ts], [t.macro_f1 for t in ts]
        points.append(
            PointResult(
                point=ts[0].point,
                baseline=key == base,
                seeds=len(ts),
                accuracy_mean=float(np.mean(accs)),
                accuracy_std=float(np.std(accs, ddof=1)) if len(ts) > 1 else 0.0,
                accuracy_ci=accuracy_interval(correct),
                macro_f1_mean=float(np.mean(f1s)),
                macro_f1_std=float(np.std(f1s, ddof=1)) if len(ts) > 1 else 0.0,
                p_value=raw_p.get(key),
                p_holm=adjusted.get(key),
                significant=adjusted.get(key, 1.0) < 0.05,
            )
        )
    return sorted(points, key=lambda p: -p.accuracy_mean)


def study_report(study_id: str, checkpoints: Path | None = None, runs_root: Path | None = None) -> StudyReport:
    """The report of a study run from its trials' checkpoints in the store and its status files."""
    directory = study_dir(study_id, runs_root)
    info, spec = read_run(directory), read_spec(directory)
    found = sorted(
        (
            (i.meta, i.path)
            for i in list_checkpoints(checkpoints or default_root())
            if i.meta is not None and i.meta.study is not None and i.meta.study.study_id == study_id
        ),
        key=lambda item: item[0].id,
    )
    predictions = {meta.id: load_predictions(path, meta) for meta, path in found}
    if len({p.names for p in predictions.values()}) > 1:
        raise ValueError(f"the trials of {study_id} were tested on different faces: no paired comparison is possible")
    trials = [_trial(meta, predictions[meta.id], list(spec.axes)) for meta, _ in found]
    statuses, done = read_trials(directory), {t.trial for t in trials}
    return StudyReport(
        study_id=study_id,
        study=spec.name,
        profile=info.profile,
        axes={k: v if isinstance(v, Range) else list(v) for k, v in spec.axes.items()},
        baseline=spec.baseline,
        points=_points(trials, predictions, spec.baseline) if trials else [],
        trials=trials,
        failed=[s for s in statuses.values() if s.state in ("failed", "stopped") and s.trial not in done],
        unfinished=[s.trial for s in statuses.values() if s.state in ("queued", "running") and s.trial not in done],
    )
