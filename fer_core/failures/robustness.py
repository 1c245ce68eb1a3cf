"""Accuracy under the corruption suite, and corruption error as Hendrycks & Dietterich (ICLR 2019) report it.

A checkpoint's run holds its probabilities on every test face, clean and under each corruption and severity
asked for, cached (failures/cache.py: the cache folder, float16) and keyed by
the weights' digest, the data's fingerprint and SUITE_VERSION: a change of any recomputes it, a damaged file is
recomputed, and severities asked for later are added to what is there. Scores (CE, mCE, relative mCE, per class)
are numpy arithmetic on the stored probabilities, so ensembles and other references cost nothing.

CE_c = sum_s E(c, s) / sum_s E_ref(c, s); relative CE_c = sum_s (E(c, s) - E_clean) / sum_s (E_ref(c, s) -
E_ref_clean); mCE and relative mCE are their means over every corruption but the flip control. The mCE of the
held-out corruptions (corruptions.HELD_OUT, which no training preset imitates) and of the seen ones are reported
apart: only the held-out figure shows robustness that training did not teach directly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..evaluation import EnsembleError, ensemble_probs
from ..records import CheckpointMeta, Interval, Predictions
from .cache import read_result, result_file, weights_digest, write_result
from .corruptions import HELD_OUT, SUITE, SUITE_VERSION, corrupt, get_corruption

if TYPE_CHECKING:
    from ..classifier import FerClassifier
    from ..data import FerData

CLEAN = "clean"
REFERENCE_MODEL = "alexnet"
DEFAULT_SEVERITIES = (1, 3, 5)  # the app's and the reports' default: every corruption at three of its five levels
KIND = "robustness"
Progress = Callable[[int, int, str], None]  # (done, total, what is running)


def condition(corruption: str, severity: int) -> str:
    """The key of one corruption at one severity: `gaussian_blur@3`."""
    return f"{corruption}@{severity}"


def conditions(corruptions: Iterable[str] | None = None, severities: Iterable[int] | None = None) -> list[str]:
    """Every (corruption, severity) key asked for: all of the suite by default; a severity a corruption does not
    have (the flip control has only 1) is skipped for it, one the suite does not have at all is refused."""
    names = list(corruptions) if corruptions else [c.name for c in SUITE]
    wanted = set(severities) if severities else None
    known = {s for c in SUITE for s in c.severities}
    if wanted and not wanted <= known:
        raise ValueError(f"severities are {min(known)} to {max(known)}, not {', '.join(map(str, sorted(wanted - known)))}")
    keys = []
    for name in names:
        corruption = get_corruption(name)
        keys += [condition(name, s) for s in corruption.severities if wanted is None or s in wanted or corruption.control]
    return keys


@dataclass(frozen=True)
class RobustnessRun:
    """One model's (or ensemble's) probabilities on the same test faces, clean and per condition."""

    checkpoint: str  # an id, or "ensemble of ..." for a mean of several
    predictions: dict[str, Predictions]  # CLEAN and condition keys
    weights: str = ""  # sha256 of the weights file the probabilities came from
    backend: str = "torch"
    seconds: float = 0.0  # time spent computing, in the call that made this object

    @property
    def clean(self) -> Predictions:
        return self.predictions[CLEAN]

    def accuracy(self, key: str = CLEAN) -> float:
        return self.predictions[key].accuracy

    def per_class_accuracy(self, key: str = CLEAN) -> dict[str, float]:
        p = self.predictions[key]
        return {c: float((p.predicted[p.labels == i] == i).mean()) for i, c in enumerate(p.classes) if (p.labels == i).any()}

    def wrong(self, key: str) -> np.ndarray:
        """Positions of the test faces this condition gets wrong that the clean faces got right: what it broke."""
        broken = (self.predictions[key].predicted != self.clean.labels) & (self.clean.predicted == self.clean.labels)
        return np.flatnonzero(broken)


def cache_file(checkpoint_id: str, weights: str, split_tag: str = "") -> Path:
    """`split_tag` names a split other than the checkpoint's test split (PublicTest runs select models)."""
    return result_file(KIND, f"{checkpoint_id}@{split_tag}" if split_tag else checkpoint_id, weights)


def _split_tag(meta: CheckpointMeta, split: str | None) -> str:
    return "" if split is None or split == meta.test_split else split


def _key(weights: str, fingerprint: str) -> dict[str, str]:
    return {"weights": weights, "data_fingerprint": fingerprint, "suite_version": str(SUITE_VERSION)}


def _save(file: Path, run: RobustnessRun) -> None:
    clean = run.clean
    tensors = {"labels": clean.labels.astype(np.int64)} | {k: p.probs.astype(np.float16) for k, p in run.predictions.items()}
    facts = {
        "checkpoint": run.checkpoint,
        "backend": run.backend,
        "names": json.dumps(list(clean.names)),
        "classes": json.dumps(list(clean.classes)),
        "split": clean.split,
    }
    write_result(file, tensors, _key(run.weights, clean.data_fingerprint), facts)


def _load(file: Path, weights: str, fingerprint: str) -> RobustnessRun | None:
    """The cached run when it was made by these weights on this data with this suite; None otherwise (or damaged)."""
    found = read_result(file, _key(weights, fingerprint))
    if found is None:
        return None
    tensors, facts = found
    try:
        labels = tensors.pop("labels")
        names, classes = tuple(json.loads(facts["names"])), tuple(json.loads(facts["classes"]))
        base = Predictions(np.empty((0, 0), np.float32), labels, names, classes, facts["split"], fingerprint)
    except (KeyError, ValueError):
        return None
    predictions = {key: replace(base, probs=probs.astype(np.float32)) for key, probs in tensors.items()}
    if CLEAN not in predictions or any(len(p.probs) != len(labels) for p in predictions.values()):
        return None
    return RobustnessRun(facts["checkpoint"], predictions, weights, facts.get("backend", "torch"))


def _test_faces(clf: FerClassifier, data: FerData, split: str) -> tuple[np.ndarray, Predictions]:
    if tuple(data.classes) != clf.classes:
        raise ValueError(f"{clf.id} predicts {list(clf.classes)}, the data has {list(data.classes)}")
    images, labels = data.take(split)
    empty = Predictions(np.empty((0, 0), np.float32), labels.numpy(), data.names_of(split), clf.classes, split, data.fingerprint)
    return images[:, 0].numpy(), empty


def robustness_run(
    clf: FerClassifier,
    data: FerData,
    keys: list[str] | None = None,
    on_progress: Progress | None = None,
    split: str | None = None,
) -> RobustnessRun:
    """The checkpoint's probabilities on its test faces (or `split`'s), clean and under each condition in `keys`
    (default: the whole suite), from the cache where it has them, the rest computed in batches and added to it."""
    if clf.path is None:
        raise ValueError("robustness is measured for stored checkpoints (their weights key the cache)")
    keys = keys or conditions()
    weights = weights_digest(clf.path)
    file = cache_file(clf.id, weights, _split_tag(clf.meta, split))
    faces, base = _test_faces(clf, data, split or clf.meta.test_split)
    cached = _load(file, weights, data.fingerprint)
    have = dict(cached.predictions) if cached and cached.clean.names == base.names else {}
    missing = [k for k in [CLEAN, *keys] if k not in have]
    started = time.perf_counter()
    for done, key in enumerate(missing):
        if on_progress:
            on_progress(done, len(missing), key)
        corrupted = faces if key == CLEAN else corrupt(faces, *_parse(key))
        have[key] = replace(base, probs=clf.predict_proba(corrupted).astype(np.float32))
    if on_progress:
        on_progress(len(missing), len(missing), "done")
    run = RobustnessRun(clf.id, have, weights, clf.backend, time.perf_counter() - started)
    if missing:
        _save(file, run)
    return replace(run, predictions={k: have[k] for k in [CLEAN, *keys]})


def _parse(key: str) -> tuple[str, int]:
    name, _, severity = key.partition("@")
    return name, int(severity)


def ensemble_run(runs: list[RobustnessRun]) -> RobustnessRun:
    """The mean-probability ensemble of runs on the same faces, condition by condition (the conditions all have)."""
    if len(runs) < 2:
        raise EnsembleError("an ensemble needs at least two members")
    first = runs[0]
    for run in runs[1:]:
        if run.clean.names != first.clean.names or run.clean.classes != first.clean.classes:
            raise EnsembleError(f"ensemble members must share classes and test faces: {run.checkpoint} does not")
    shared = [k for k in first.predictions if all(k in r.predictions for r in runs)]
    mean = {k: replace(first.predictions[k], probs=ensemble_probs([r.predictions[k].probs for r in runs])) for k in shared}
    return RobustnessRun(f"ensemble of {', '.join(r.checkpoint for r in runs)}", mean)


@dataclass(frozen=True)
class CorruptionScore:
    corruption: str
    accuracy: dict[int, float]  # severity -> accuracy
    ce: float | None  # corruption error against the reference (None without one)
    relative_ce: float | None  # None without a reference, or where the reference did not degrade

    @property
    def mean_accuracy(self) -> float:
        return float(np.mean(list(self.accuracy.values())))


@dataclass(frozen=True)
class RobustnessReport:
    checkpoint: str
    clean_accuracy: float
    scores: tuple[CorruptionScore, ...]  # in suite order, the control last
    reference: str | None = None
    reference_note: str = ""  # why there are no CEs, when there are none
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)  # condition -> class -> accuracy

    def _ranked(self, held_out: bool | None = None) -> list[CorruptionScore]:
        return [s for s in self.scores if _on_side(s.corruption, held_out)]

    @property
    def mce(self) -> float | None:
        return _mean_or_none([s.ce for s in self._ranked()])

    @property
    def mce_held_out(self) -> float | None:
        """mCE over the held-out corruptions; None unless every one of them was run."""
        return self._mce_of_side(held_out=True)

    @property
    def mce_seen(self) -> float | None:
        """mCE over the corruptions training imitates; None unless every one of them was run."""
        return self._mce_of_side(held_out=False)

    def _mce_of_side(self, held_out: bool) -> float | None:
        scores = self._ranked(held_out)
        side = {c.name for c in SUITE if _on_side(c.name, held_out)}
        return _mean_or_none([s.ce for s in scores]) if {s.corruption for s in scores} == side else None

    @property
    def relative_mce(self) -> float | None:
        return _mean_or_none([s.relative_ce for s in self._ranked()])

    @property
    def mean_corrupted_accuracy(self) -> float:
        """Accuracy averaged over every corruption and severity but the control: a figure without a reference."""
        return float(np.mean([s.mean_accuracy for s in self._ranked()])) if self._ranked() else float("nan")

    @property
    def worst(self) -> str | None:
        ranked = self._ranked()
        return min(ranked, key=lambda s: s.mean_accuracy).corruption if ranked else None

    def to_json(self) -> dict:
        return {
            "checkpoint": self.checkpoint,
            "clean": self.clean_accuracy,
            "corruptions": {s.corruption: {str(k): v for k, v in s.accuracy.items()} for s in self.scores},
            "ce": {s.corruption: s.ce for s in self.scores if s.ce is not None},
            "relative_ce": {s.corruption: s.relative_ce for s in self.scores if s.relative_ce is not None},
            "mce": self.mce,
            "mce_seen": self.mce_seen,
            "mce_held_out": self.mce_held_out,
            "held_out": list(HELD_OUT),
            "relative_mce": self.relative_mce,
            "mean_corrupted_accuracy": self.mean_corrupted_accuracy,
            "worst": self.worst,
            "reference": self.reference,
            "reference_note": self.reference_note,
            "per_class": self.per_class,
        }


def _on_side(corruption: str, held_out: bool | None) -> bool:
    """Not the control; and where `held_out` is given, a held-out corruption (True) or a seen one (False)."""
    return not get_corruption(corruption).control and (held_out is None or (corruption in HELD_OUT) == held_out)


def _mean_or_none(values: list[float | None]) -> float | None:
    """The mean, or None when any value is missing (an mCE over some corruptions only would mislead)."""
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present and len(present) == len(values) else None


def _by_corruption(run: RobustnessRun) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for key in run.predictions:
        if key != CLEAN:
            name, severity = _parse(key)
            out.setdefault(name, {})[severity] = run.accuracy(key)
    order = [c.name for c in SUITE]
    return {name: dict(sorted(out[name].items())) for name in sorted(out, key=order.index)}


def _comparable(run: RobustnessRun, reference: RobustnessRun | None) -> str:
    if reference is None:
        return "no reference model: CE needs one"
    if reference.clean.names != run.clean.names:
        return f"{reference.checkpoint} was tested on other faces: CE needs the same faces"
    return ""


def report(run: RobustnessRun, reference: RobustnessRun | None = None) -> RobustnessReport:
    """Accuracy per corruption and severity, CE and relative CE against `reference` on the same faces, per class."""
    note = _comparable(run, reference)
    ref = None if note else reference
    scores = []
    for name, accuracy in _by_corruption(run).items():
        ce = relative = None
        if ref is not None and all(condition(name, s) in ref.predictions for s in accuracy):
            errors = np.array([1 - accuracy[s] for s in accuracy])
            ref_errors = np.array([1 - ref.accuracy(condition(name, s)) for s in accuracy])
            ce = float(errors.sum() / ref_errors.sum()) if ref_errors.sum() > 0 else None
            degradation = (ref_errors - (1 - ref.accuracy())).sum()
            relative = float((errors - (1 - run.accuracy())).sum() / degradation) if degradation > 0 else None
        scores.append(CorruptionScore(name, accuracy, ce, relative))
    return RobustnessReport(
        checkpoint=run.checkpoint,
        clean_accuracy=run.accuracy(),
        scores=tuple(scores),
        reference=reference.checkpoint if reference is not None else None,
        reference_note=note,
        per_class={key: run.per_class_accuracy(key) for key in run.predictions},
    )


def cached_run(path: Path, meta: CheckpointMeta, keys: list[str], split: str | None = None) -> RobustnessRun | None:
    """The cached run of a checkpoint on the data it was trained on (its test faces, or `split`'s), when it holds
    every condition in `keys`: what a page opens without loading the dataset or the model."""
    weights = weights_digest(path)
    run = _load(cache_file(meta.id, weights, _split_tag(meta, split)), weights, meta.data.fingerprint)
    if run is None or any(k not in run.predictions for k in keys):
        return None
    return replace(run, predictions={k: run.predictions[k] for k in [CLEAN, *keys]})


def checkpoint_run(
    checkpoint: str | Path,
    data_path: str | Path,
    keys: list[str],
    root: Path | None = None,
    backend: str = "faster",
    on_progress: Progress | None = None,
    split: str | None = None,
) -> RobustnessRun:
    """A stored checkpoint's run on its test faces (or `split`'s) from the data at `data_path` (read as the
    checkpoint saw it), on the backend this machine measured faster for it unless `backend` names one."""
    from ..backends import faster_backend
    from ..classifier import load_checkpoint
    from ..store import dataset_for, read_meta, resolve_checkpoint

    path = resolve_checkpoint(checkpoint, root)
    meta = read_meta(path)
    cached = cached_run(path, meta, keys, split)
    if cached is not None:
        return cached
    chosen = faster_backend(path, meta) if backend == "faster" else backend
    clf = load_checkpoint(path, backend=chosen)
    return robustness_run(clf, dataset_for(meta, data_path), keys, on_progress, split)


def estimated_seconds(meta: CheckpointMeta, conditions_count: int) -> float:
    """How long computing that many conditions (and the clean faces) takes for a checkpoint on this kind of CPU, from
    its measured throughput (300 faces/s where it has none): the page's estimate before a run."""
    rate = meta.efficiency.throughput_per_s if meta.efficiency else 300.0
    return meta.test_metrics.n * (conditions_count + 1) / max(rate, 1.0)


def default_reference(metas: Iterable[CheckpointMeta], like: CheckpointMeta) -> str | None:
    """The AlexNet checkpoint of `like`'s labels and classes (Hendrycks & Dietterich normalise CE by AlexNet), the
    most accurate where there are several; None without one. Its test faces are checked where CE is computed."""
    same = [
        m
        for m in metas
        if m.model == REFERENCE_MODEL
        and (m.data.label_source, m.classes, m.test_split) == (like.data.label_source, like.classes, like.test_split)
    ]
    return max(same, key=lambda m: m.accuracy).id if same else None


@dataclass(frozen=True)
class CachedRuns:
    """Checkpoints' cached runs and their reference's: what mCE is read from without running any model."""

    wanted: tuple[str, ...]
    runs: dict[str, RobustnessRun]
    reference_id: str | None  # None: the store has no AlexNet of these classes and labels
    reference: RobustnessRun | None

    def missing(self) -> list[str]:
        """The checkpoints (the reference included) whose runs are still to compute."""
        ref = [self.reference_id] if self.reference_id and self.reference is None else []
        return list(dict.fromkeys([cid for cid in self.wanted if cid not in self.runs] + ref))  # the reference once

    def mce(self) -> dict[str, float]:
        """Each checkpoint's mCE, where its run and the reference's are cached."""
        if self.reference is None:
            return {}
        return {cid: m for cid, run in self.runs.items() if (m := report(run, self.reference).mce) is not None}


def cached_runs(
    found: list[tuple[CheckpointMeta, Path]], store: list[tuple[CheckpointMeta, Path]], keys: list[str] | None = None
) -> CachedRuns:
    """`found`'s cached runs (default: every corruption at DEFAULT_SEVERITIES) and those of the reference `store`
    holds for the first of them (default_reference). The checkpoints must share classes, labels and test faces."""
    keys = keys or conditions(severities=DEFAULT_SEVERITIES)
    runs = {meta.id: run for meta, path in found if (run := cached_run(path, meta, keys)) is not None}
    ref_id = default_reference([m for m, _ in store], found[0][0]) if found else None
    ref = next(((m, p) for m, p in store if m.id == ref_id), None)
    reference = runs.get(ref_id) if ref_id in runs else (cached_run(ref[1], ref[0], keys) if ref else None)
    return CachedRuns(tuple(m.id for m, _ in found), runs, ref_id, reference)


def measured_mce(store: list[tuple[CheckpointMeta, Path]]) -> dict[str, float]:
    """Every checkpoint's mCE at the default severities where its run and its reference's are cached: no model runs,
    so Live and Video can choose their default models by it."""
    groups: dict[tuple, list[tuple[CheckpointMeta, Path]]] = {}
    for meta, path in store:
        key = (meta.data.label_source, meta.classes, meta.test_split, meta.data.fingerprint)
        groups.setdefault(key, []).append((meta, path))
    return {cid: m for group in groups.values() for cid, m in cached_runs(group, store).mce().items()}


def mce_interval(run: RobustnessRun, reference: RobustnessRun, held_out: bool | None = None) -> Interval | None:
    """Bootstrap (percentile) 95% interval of mCE over the test faces (scipy.stats.bootstrap resampling face
    positions, so the model and the reference are judged on the same resampled faces); None where mCE is undefined.
    `held_out` as in RobustnessReport: the held-out corruptions only (True), the seen ones only (False)."""
    from scipy.stats import bootstrap

    if _comparable(run, reference):
        return None
    names = [n for n in _by_corruption(run) if _on_side(n, held_out)]
    keys = [k for n in names for k in run.predictions if k != CLEAN and _parse(k)[0] == n and k in reference.predictions]
    if not keys:
        return None
    groups = np.array([names.index(_parse(k)[0]) for k in keys])
    labels = run.clean.labels

    def correct(r: RobustnessRun) -> np.ndarray:
        return np.stack([r.predictions[k].predicted == labels for k in keys]).astype(np.float32)

    mine, theirs = correct(run), correct(reference)

    def statistic(faces: np.ndarray, axis: int = -1) -> np.ndarray:
        """mCE over resampled face positions (..., N): the same faces for the model and the reference."""
        errors, ref_errors = 1 - mine[:, faces].mean(-1), 1 - theirs[:, faces].mean(-1)  # (conditions, resamples...)
        sums = [(errors[groups == g].sum(0), ref_errors[groups == g].sum(0)) for g in range(len(names))]
        return np.mean([e / np.maximum(r, 1e-12) for e, r in sums], axis=0)

    result = bootstrap(
        (np.arange(len(labels)),), statistic, vectorized=True, n_resamples=1000, batch=50, method="percentile", random_state=0
    )
    return Interval(float(result.confidence_interval.low), float(result.confidence_interval.high))
