"""One complete run: data -> model -> fit -> test predictions -> checkpoint with full provenance."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torchvision

from .. import __version__
from ..classifier import predict_logits
from ..data import FerData, load_dataset
from ..devices import resolve_device
from ..evaluation import compute_metrics, efficiency, headline
from ..models import count_parameters, get_spec
from ..store import load_weights, read_meta, resolve_checkpoint, save_checkpoint
from .config import TrainConfig
from .loop import Callbacks, fit
from .targets import teacher_probabilities, training_targets


def library_versions() -> dict:
    import cv2
    import kornia
    import safetensors
    import sklearn

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
        "platform": platform.platform(),
    }


def git_commit() -> str | None:
    """HEAD of the checkout; FER_GIT_COMMIT names it where the code runs from a copy without .git (a GPU box)."""
    if os.environ.get("FER_GIT_COMMIT"):
        return os.environ["FER_GIT_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _start_from(model: torch.nn.Module, cfg: TrainConfig, data: FerData, root: Path | None) -> dict:
    """Copy a trained checkpoint's weights into the fresh model; returns what it was, for meta.json."""
    path = resolve_checkpoint(cfg.init_from, root)
    meta = read_meta(path)
    if meta["model"] != cfg.model or tuple(meta["classes"]) != tuple(data.classes):
        raise ValueError(f"{path.name} is a {meta['model']} for {meta['classes']}: it cannot start a {cfg.model} "
                         f"for {list(data.classes)}")
    model.load_state_dict(load_weights(path, meta).state_dict())
    return {"id": path.name, "data_fingerprint": meta["data"]["fingerprint"],
            "test_accuracy": meta.get("test_metrics", {}).get("accuracy")}


def train_and_save(
    cfg: TrainConfig,
    data: FerData | None = None,
    root: Path | None = None,
    callbacks: Callbacks | None = None,
    state_file: Path | None = None,
    measure_efficiency: bool = True,
) -> Path:
    """Train, evaluate on the test split and write a checkpoint; returns its directory.

    Cancellation, divergence or any error raise before anything is written to the store.
    """
    started = _now()
    if data is None:
        data = load_dataset(cfg.data, labels=cfg.labels, classes=cfg.classes, val_fraction=cfg.val_fraction, seed=cfg.seed)
    spec = get_spec(cfg.model)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = spec.build(len(data.classes), pretrained=cfg.pretrained)
    started_from = _start_from(model, cfg, data, root) if cfg.init_from else None
    targets, teachers = None, None
    if cfg.teachers:
        cb = callbacks or Callbacks()
        if cb.on_stage:
            cb.on_stage(f"{len(cfg.teachers)} teacher(s) predicting the training faces")
        teacher_probs, teachers = teacher_probabilities(cfg.teachers, data, root, device, cb.should_stop)
        targets = training_targets(data, cfg, teacher_probs)
    result = fit(model, spec.input, spec.head, data, cfg, device, callbacks, state_file, targets)

    model.load_state_dict(result.best_state)
    model.to(device)
    test_idx = data.indices("test")
    logits = predict_logits(model, data.images[test_idx], spec.input, device)
    probs = logits.softmax(1)
    labels = data.labels[test_idx]
    metrics = compute_metrics(probs.numpy(), labels.numpy(), data.classes)
    model.cpu().eval()
    meta = {
        "model": spec.name,
        "family": spec.family,
        "reference": spec.reference,
        "classes": list(data.classes),
        "input": {"size": spec.input.size, "channels": spec.input.channels, "fit": spec.input.fit},
        "config": cfg.to_dict(),
        "seed": cfg.seed,
        "data": {
            "source": Path(data.source).name,
            "fingerprint": data.fingerprint,
            "label_source": data.label_source,
            "split_method": data.split_method,
            "split_sizes": data.split_sizes(),
            "classes": list(data.classes),
        },
        "versions": library_versions(),
        "git_commit": git_commit(),
        "created_at": _now(),
        "started_at": started,
        "device": result.device,
        "device_name": torch.cuda.get_device_name(torch.device(result.device)) if result.device.startswith("cuda") else platform.processor() or "cpu",
        "train_time_s": result.train_time_s,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "stop_reason": result.stop_reason,
        "history": result.history,
        "parameters": count_parameters(model),
        "test_metrics": headline(metrics),
        "test_split": "test",
    }
    if started_from:
        meta["init_from"] = started_from
    if teachers:
        meta["teachers"] = teachers
    if measure_efficiency:
        meta["efficiency"] = efficiency(model, spec.input)
    names = [data.names[i] for i in test_idx.tolist()]
    return save_checkpoint(model.state_dict(), meta, probs, labels, names, root=root)


