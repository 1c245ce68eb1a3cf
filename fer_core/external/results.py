"""Checkpoints on an external dataset: each model judged on the classes it shares with the data (its
probabilities restricted to them and renormalised, said so in every view), the predictions cached per dataset
fingerprint and checkpoint in the store: `<root>/.external/<fingerprint>/<checkpoint id>.safetensors`, beside
the cropped faces."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data.choices import DataError
from ..records import Predictions
from ..store import CheckpointError, default_root, read_predictions, save_predictions
from .records import FACES_FILE, ExternalData, ExternalSummary, read_faces, read_facts

if TYPE_CHECKING:
    from ..classifier import FerClassifier

EXTERNAL_DIR = ".external"


def external_root(root: Path | None = None) -> Path:
    """Where external datasets' faces and results are cached: inside the checkpoint store, so they travel with it."""
    return Path(root or default_root()) / EXTERNAL_DIR


def _dataset_dir(fingerprint: str, root: Path | None) -> Path:
    if not re.fullmatch(r"[0-9a-f]{16}", fingerprint):  # names a folder: never a path from outside
        raise DataError(f"not a dataset fingerprint: {fingerprint!r}")
    return external_root(root) / fingerprint


@dataclass(frozen=True)
class ExternalResult:
    checkpoint: str
    dataset: str
    predictions: Predictions  # over the shared classes, probabilities renormalised over them
    missing_in_data: tuple[str, ...]  # the model's classes the dataset has no face of
    missing_in_model: tuple[str, ...]  # the dataset's classes the model lacks: their faces are left out
    faces_left_out: int
    outside_top: float  # share of evaluated faces whose top class over all the model's classes is one the data lacks

    @property
    def fingerprint(self) -> str:
        return self.predictions.data_fingerprint

    def note(self) -> str:
        """What the figures cover, in a phrase: the shared classes and what was left out on either side."""
        text = f"on the {len(self.predictions.classes)} shared classes"
        if self.missing_in_data:
            text += f"; the model's {', '.join(self.missing_in_data)} left out (its top class on {self.outside_top:.0%} of faces)"
        if self.missing_in_model:
            text += f"; {self.faces_left_out} faces of {', '.join(self.missing_in_model)} left out (not a class of the model)"
        return text


def _shared(clf_classes: tuple[str, ...], data: ExternalData) -> tuple[str, ...]:
    shared = tuple(c for c in clf_classes if c in data.classes)
    if len(shared) < 2:
        raise DataError(f"{data.name} shares {len(shared)} class(es) with a model of {', '.join(clf_classes)}: two are needed")
    return shared


def evaluate_external(clf: FerClassifier, data: ExternalData, root: Path | None = None) -> ExternalResult:
    """The checkpoint's predictions on every face of `data` whose class it knows; read from the cache when this
    checkpoint already saw this dataset (same fingerprint), else computed and cached."""
    file = _dataset_dir(data.fingerprint, root) / f"{clf.meta.id}.safetensors"
    if file.is_file():
        try:
            return _read(file)
        except CheckpointError:
            pass  # a damaged cache entry is recomputed and replaced
    shared = _shared(clf.classes, data)
    keep = np.array([label in shared for label in data.labels])
    all_probs = clf.predict_proba(data.images[keep][:, None])
    columns = [clf.classes.index(c) for c in shared]
    probs = all_probs[:, columns]
    probs = probs / probs.sum(axis=1, keepdims=True).clip(min=1e-12)
    result = ExternalResult(
        checkpoint=clf.meta.id,
        dataset=data.name,
        predictions=Predictions(
            probs=probs.astype(np.float32),
            labels=np.array([shared.index(label) for label in np.array(data.labels)[keep]], np.int64),
            names=tuple(np.array(data.names)[keep]),
            classes=shared,
            split=f"external:{data.name}",
            data_fingerprint=data.fingerprint,
        ),
        missing_in_data=tuple(c for c in clf.classes if c not in shared),
        missing_in_model=tuple(c for c in data.classes if c not in shared),
        faces_left_out=int((~keep).sum()),
        outside_top=float(np.isin(all_probs.argmax(1), columns, invert=True).mean()),
    )
    file.parent.mkdir(parents=True, exist_ok=True)
    save_predictions(file, result.predictions, _facts(result))
    return result


@dataclass(frozen=True)
class EvaluatedCheckpoints:
    """What evaluate_checkpoints returns: the results by checkpoint id, and the checkpoints that could not be
    judged on the dataset with the reason."""

    results: dict[str, ExternalResult]
    skipped: dict[str, str]


def evaluate_checkpoints(
    data: ExternalData,
    checkpoint_ids: Sequence[str],
    load: Callable[[str], FerClassifier],
    root: Path | None = None,
    on_start: Callable[[int, str], None] = lambda done, checkpoint_id: None,
) -> EvaluatedCheckpoints:
    """Each checkpoint on `data` (evaluate_external: cached ones are read back), loaded with `load`; one that cannot
    be judged on it (fewer than two shared classes) is skipped with the reason, and the others still run.
    `on_start(done, checkpoint_id)` before each, `done` counting the checkpoints before it."""
    results, skipped = {}, {}
    for done, checkpoint_id in enumerate(checkpoint_ids):
        on_start(done, checkpoint_id)
        try:
            results[checkpoint_id] = evaluate_external(load(checkpoint_id), data, root)
        except DataError as exc:
            skipped[checkpoint_id] = str(exc)
    return EvaluatedCheckpoints(results, skipped)


def _facts(result: ExternalResult) -> dict[str, str]:
    facts = {
        "checkpoint": result.checkpoint,
        "dataset": result.dataset,
        "missing_in_data": list(result.missing_in_data),
        "missing_in_model": list(result.missing_in_model),
        "faces_left_out": result.faces_left_out,
        "outside_top": result.outside_top,
    }
    return {"external": json.dumps(facts)}


def _read(file: Path) -> ExternalResult:
    predictions, extra = read_predictions(file)
    try:
        facts = json.loads(extra["external"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file}: not an external result") from exc
    return ExternalResult(
        checkpoint=facts["checkpoint"],
        dataset=facts["dataset"],
        predictions=predictions,
        missing_in_data=tuple(facts["missing_in_data"]),
        missing_in_model=tuple(facts["missing_in_model"]),
        faces_left_out=int(facts["faces_left_out"]),
        outside_top=float(facts["outside_top"]),
    )


def cached_datasets(root: Path | None = None) -> dict[str, ExternalSummary]:
    """fingerprint -> the summary of every external dataset evaluated in this store."""
    from safetensors import SafetensorError

    found = {}
    for faces in sorted(external_root(root).glob(f"*/{FACES_FILE}")):
        try:
            found[faces.parent.name] = ExternalSummary.from_json(read_facts(faces))
        except (OSError, SafetensorError, KeyError, TypeError, json.JSONDecodeError):
            continue  # a half-written or foreign file: not listed
    return found


def cached_results(fingerprint: str, root: Path | None = None) -> dict[str, ExternalResult]:
    """checkpoint id -> its cached result on the dataset of that fingerprint."""
    results = {}
    for file in sorted(_dataset_dir(fingerprint, root).glob("*.safetensors")):
        if file.name != FACES_FILE:
            try:
                results[file.stem] = _read(file)
            except CheckpointError:
                continue
    return results


def cached_data(fingerprint: str, root: Path | None = None) -> ExternalData:
    """The cropped faces of an external dataset evaluated before: more models can run on them without the files."""
    file = _dataset_dir(fingerprint, root) / FACES_FILE
    if not file.is_file():
        raise DataError(f"no external dataset {fingerprint!r} in {external_root(root)}")
    return read_faces(file)
