"""One complete run: data -> model -> fit -> test predictions -> checkpoint with full provenance."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torchvision

from .. import __version__
from ..data import FerData, load_dataset
from ..devices import resolve_device
from ..efficiency import efficiency
from ..evaluation import compute_metrics
from ..inference import predict_logits
from ..models import ModelSpec, count_parameters, get_spec
from ..records import CheckpointMeta, CheckpointRef, DataProvenance, Predictions, StudyTrial
from ..store import half_precision, load_state, load_weights, read_meta, resolve_checkpoint, save_checkpoint
from .config import TrainConfig
from .loop import Callbacks, FitResult, check_precision, fit
from .targets import teacher_probabilities, training_targets


def library_versions() -> dict[str, str]:
    import cv2
    import kornia
    import safetensors
    import sklearn
    import timm

    return {
        "fer_core": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "kornia": kornia.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "opencv": cv2.__version__,
        "safetensors": safetensors.__version__,
        "timm": timm.__version__,  # a timm:<name> checkpoint is rebuilt by name: the version that built it
        "platform": platform.platform(),
    }


def git_commit() -> str | None:
    """HEAD of the checkout; FER_GIT_COMMIT names it where the code runs from a copy without .git (a GPU box)."""
    if os.environ.get("FER_GIT_COMMIT"):
        return os.environ["FER_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _start_from(model: torch.nn.Module, cfg: TrainConfig, data: FerData, root: Path | None) -> CheckpointRef:
    """Copy a trained checkpoint's weights into the fresh model; returns what it was, for meta.json."""
    assert cfg.init_from is not None
    path = resolve_checkpoint(cfg.init_from, root)
    meta = read_meta(path)
    if meta.model != cfg.model or meta.classes != tuple(data.classes):
        raise ValueError(
            f"{path.name} is a {meta.model} for {list(meta.classes)}: it cannot start a {cfg.model} for {list(data.classes)}"
        )
    model.load_state_dict(load_weights(path, meta).state_dict())
    return CheckpointRef(id=path.name, model=meta.model, data_fingerprint=meta.data.fingerprint, test_accuracy=meta.accuracy)


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else platform.processor() or "cpu"


@dataclass(frozen=True)
class _Provenance:
    """Where a run came from, beyond its config: when it started, the weights it started from, its teachers, its study."""

    started_at: str
    init_from: CheckpointRef | None
    teachers: tuple[CheckpointRef, ...]
    study: StudyTrial | None


def _checkpoint_meta(
    cfg: TrainConfig,
    spec: ModelSpec,
    data: FerData,
    result: FitResult,
    model: torch.nn.Module,
    predictions: Predictions,
    provenance: _Provenance,
    measure_efficiency: bool,
) -> CheckpointMeta:
    """Everything the checkpoint records: architecture, classes, config, seed, data, versions, metrics, history."""
    return CheckpointMeta(
        id="",
        model=spec.name,
        family=spec.family,
        reference=spec.reference,
        classes=tuple(data.classes),
        input=spec.input,
        config=cfg,
        seed=cfg.seed,
        data=DataProvenance(
            source=Path(data.source).name,
            fingerprint=data.fingerprint,
            label_source=data.label_source,
            split_method=data.split_method,
            split_sizes=data.split_sizes(),
            classes=tuple(data.classes),
        ),
        versions=library_versions(),
        git_commit=git_commit(),
        created_at=_now(),
        started_at=provenance.started_at,
        device=result.device,
        device_name=_device_name(result.device),
        train_time_s=result.train_time_s,
        best_epoch=result.best_epoch,
        stop_reason=result.stop_reason,
        history=tuple(result.history),
        parameters=count_parameters(model),
        test_metrics=compute_metrics(predictions).headline(),
        init_from=provenance.init_from,
        teachers=provenance.teachers,
        efficiency=efficiency(model, spec.input) if measure_efficiency else None,
        study=provenance.study,
    )


def train_and_save(
    cfg: TrainConfig,
    data: FerData | None = None,
    root: Path | None = None,
    callbacks: Callbacks | None = None,
    state_file: Path | None = None,
    measure_efficiency: bool = True,
    study: StudyTrial | None = None,
    checkpoint_id: str | None = None,
) -> Path:
    """Train, evaluate on the test split and write a checkpoint; returns its directory.

    Test predictions and metrics come from the weights as they are saved (float16), so what Evaluate shows is
    what ships. Cancellation, divergence or any error raise before anything is written to the store.
    """
    started = _now()
    device = resolve_device(cfg.device)
    check_precision(cfg.precision, device)
    if data is None:
        data = load_dataset(cfg.data, labels=cfg.labels, classes=cfg.classes, val_fraction=cfg.val_fraction, seed=cfg.seed)
        data = data.with_train_fraction(cfg.train_fraction)
    spec = get_spec(cfg.model)
    torch.manual_seed(cfg.seed)
    model = spec.build(len(data.classes), pretrained=cfg.pretrained, **cfg.architecture())
    started_from = _start_from(model, cfg, data, root) if cfg.init_from else None
    targets, teachers = None, list[CheckpointRef]()
    cb = callbacks or Callbacks()
    stage = cb.on_stage or (lambda message: None)  # minutes outside the epochs must not look like a hang
    if cfg.teachers:
        stage(f"{len(cfg.teachers)} teacher(s) predicting the training faces")
        teacher_probs, teachers = teacher_probabilities(
            cfg.teachers, data, root, device, lambda: cb.stop_if_asked("teachers' predictions")
        )
        targets = training_targets(data, cfg, teacher_probs)
    result = fit(model, spec, data, cfg, device, callbacks, state_file, targets)

    stage(f"testing the best epoch's weights ({result.best_epoch}) on {len(data.indices('test'))} test faces")
    saved = half_precision(result.best_state)
    load_state(model, saved)
    logits = predict_logits(model, data.take("test")[0], spec.input, device, between_batches=lambda: cb.stop_if_asked("testing"))
    predictions = data.predictions(logits.softmax(1).numpy())
    model.cpu()
    if measure_efficiency:
        stage("measuring MACs and CPU latency")
    provenance = _Provenance(started, started_from, tuple(teachers), study)
    meta = _checkpoint_meta(cfg, spec, data, result, model, predictions, provenance, measure_efficiency)
    cb.stop_if_asked("the last step before saving")  # a cancel that came while MACs were measured still counts
    stage("saving the checkpoint")
    return save_checkpoint(saved, meta, predictions, root=root, checkpoint_id=checkpoint_id)
