"""A study's results from its trials' stored test predictions (no model is run): what a reviewer asks for.

Per trial: PrivateTest accuracy and macro F1 with a bootstrap 95% interval over the test faces. Per point (the
trials of one combination of axis values, one per seed): mean and standard deviation over seeds, a bootstrap 95%
interval of the seed-mean accuracy over the test faces, and McNemar's exact test against the baseline point on the
same faces (each point's seed-averaged probabilities), Holm-corrected across the study's comparisons.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data.choices import DataError
from ..evaluation import accuracy_interval, holm, mcnemar
from ..failures.label_noise import CrowdVotes, find_crowd_votes, label_noise
from ..failures.robustness import DEFAULT_SEVERITIES, RobustnessRun, cached_runs, ensemble_run, mce_interval, report
from ..records import CheckpointMeta, Interval, Predictions
from ..store import default_root, list_checkpoints, load_predictions
from .runs import UNFINISHED, TrialStatus, read_run, read_spec, read_trials, study_dir
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
    agreed_accuracy: float | None = None  # seed-averaged, on the faces whose FER2013 label is the FER+ majority
    agreed_ci: Interval | None = None  # (None without the FER+ votes beside the study's data)
    mce: float | None = None  # of the seed-averaged probabilities against the reference (None until every trial's
    mce_ci: Interval | None = None  # robustness run is cached: `python -m fer_core robustness --checkpoint IDS`)
    mce_held_out: float | None = None  # the same over the corruptions no training preset imitates
    mce_held_out_ci: Interval | None = None


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
    robustness_note: str = ""  # what the agreed-label and mCE columns need, where they are missing


def point_label(point: dict[str, Any]) -> str:
    """A point as people read it: `optimizer=adam, lr=0.00235` (a searched float to 3 significant digits)."""
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={json.dumps(v)}".replace('"', "") for k, v in point.items()
    )


def significance(p: PointResult) -> str:
    """A point's p (Holm) as the CLI and the page print it: blank where there is no comparison (no baseline
    checkpoint yet)."""
    if p.baseline:
        return "baseline"
    return "" if p.p_holm is None else f"{p.p_holm:.3g}" + (" *" if p.significant else "")


def with_interval(value: float | None, ci: Interval | None, percent: bool) -> str:
    """`71.2% [69.8%, 72.6%]` or `0.912 [0.890, 0.931]`; blank where there is no value."""
    if value is None:
        return ""
    fmt = "{:.1%}" if percent else "{:.3f}"
    return fmt.format(value) + (f" [{fmt.format(ci.low)}, {fmt.format(ci.high)}]" if ci else "")


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


@dataclass(frozen=True)
class _Failures:
    """What the points' agreed-label accuracy and mCE are computed from, where it exists."""

    crowd: CrowdVotes | None
    runs: dict[str, RobustnessRun]  # checkpoint id -> its cached robustness run
    reference: RobustnessRun | None


def _robustness(checkpoints: list[str], found: _Failures) -> dict[str, Any]:
    """The point's mCE and held-out mCE with their intervals (PointResult's fields), where its runs are cached."""
    if found.reference is None or not all(c in found.runs for c in checkpoints):
        return {}
    runs = [found.runs[c] for c in checkpoints]
    run = ensemble_run(runs) if len(runs) > 1 else runs[0]
    scores = report(run, found.reference)
    return {
        "mce": scores.mce,
        "mce_ci": mce_interval(run, found.reference),
        "mce_held_out": scores.mce_held_out,
        "mce_held_out_ci": mce_interval(run, found.reference, held_out=True),
    }


def _points(
    trials: list[TrialResult], predictions: dict[str, Predictions], baseline: dict[str, Any], found: _Failures
) -> list[PointResult]:
    """Group trials by point; each point against the baseline (McNemar on seed-averaged predictions, Holm), with its
    accuracy on the labels the crowd agrees with and its mCE where those exist."""
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
        mean = replace(predictions[ts[0].checkpoint], probs=mean_probs[key])
        agreed = label_noise(key, mean, found.crowd).agreed_accuracy() if found.crowd is not None else None
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
                agreed_accuracy=agreed.value if agreed else None,
                agreed_ci=agreed.ci if agreed else None,
                **_robustness([t.checkpoint for t in ts], found),
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
    failures, note = _failures(found, predictions, info.data, checkpoints)
    return StudyReport(
        study_id=study_id,
        study=spec.name,
        profile=info.profile,
        axes={k: v if isinstance(v, Range) else list(v) for k, v in spec.axes.items()},
        baseline=spec.baseline,
        points=_points(trials, predictions, spec.baseline, failures) if trials else [],
        trials=trials,
        failed=[s for s in statuses.values() if s.state in ("failed", "stopped") and s.trial not in done],
        unfinished=[s.trial for s in statuses.values() if s.state in UNFINISHED and s.trial not in done],
        robustness_note=note,
    )


def _failures(
    found: list[tuple[CheckpointMeta, Path]], predictions: dict[str, Predictions], data: str, checkpoints: Path | None
) -> tuple[_Failures, str]:
    """The FER+ votes of the test faces, the trials' cached robustness runs (the default severities) and the
    reference's; and a note saying what is missing."""
    if not found:
        return _Failures(None, {}, None), ""
    notes, crowd = [], None
    try:
        crowd = find_crowd_votes(data, next(iter(predictions.values())).names)
    except DataError as exc:
        notes.append(f"no agreed-label accuracy: {exc}")
    store = [(i.meta, i.path) for i in list_checkpoints(checkpoints or default_root()) if i.meta is not None]
    cached = cached_runs(found, store)
    if cached.reference_id is None:
        notes.append("no mCE: no AlexNet checkpoint to normalise by")
    elif missing := cached.missing():
        severities = ",".join(map(str, DEFAULT_SEVERITIES))
        notes.append(f"no mCE yet: python -m fer_core robustness --severities {severities} --checkpoint {','.join(missing)}")
    return _Failures(crowd, cached.runs, cached.reference), "; ".join(notes)
