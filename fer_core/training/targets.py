"""What each training face is trained towards: its label, its FER+ vote shares, or teachers' predictions mixed in.

Distillation here is offline (Hinton et al. 2015 at temperature 1): the teachers predict every training
face once, unaugmented, before the first epoch, so a student costs no more per step than plain training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..atomic import write_atomically
from ..data import FerData
from ..data.disk_cache import CACHE_VERSION, default_cache_dir, file_digest
from ..inference import predict_logits
from ..records import CheckpointMeta, CheckpointRef
from ..store import WEIGHTS_FILE, load_weights, read_meta, resolve_checkpoint
from .config import TrainConfig


class TeacherError(ValueError):
    """A teacher checkpoint cannot teach on this data."""


def training_targets(data: FerData, cfg: TrainConfig, teacher_probs: torch.Tensor | None = None) -> torch.Tensor:
    """(N_train, C) float32 class distributions, in the order of `data.indices("train")`."""
    train_idx = data.indices("train")
    if cfg.soft_labels and data.soft_labels is not None:
        base = data.soft_labels[train_idx].float()
    else:
        base = F.one_hot(data.labels[train_idx], len(data.classes)).float()
    if teacher_probs is None:
        return base
    if teacher_probs.shape != base.shape:
        raise TeacherError(
            f"teacher predictions {tuple(teacher_probs.shape)} do not match the training split {tuple(base.shape)}"
        )
    return (1.0 - cfg.teacher_weight) * base + cfg.teacher_weight * teacher_probs.float()


def teacher_probabilities(
    teachers: tuple[str, ...] | list[str],
    data: FerData,
    root: Path | None = None,
    device: str | torch.device = "cpu",
    between_batches: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, list[CheckpointRef]]:
    """Mean probability of the teachers on every training face, and what each teacher was (for meta.json).

    A teacher must predict the same classes and must have been trained on the same data (equal
    fingerprint): one trained on other splits could carry this run's validation or test faces into training.
    `between_batches` runs between batches of faces and may raise: on a CPU the teachers take minutes, and Cancel
    must work.
    Each teacher's predictions are cached on disk (keyed by its weights and the data), so the next student
    taught by the same checkpoint starts at once.
    """
    images, _ = data.take("train")
    device = torch.device(device)
    total, provenance = None, []
    for teacher in teachers:
        path = resolve_checkpoint(teacher, root)
        meta = read_meta(path)
        if meta.classes != tuple(data.classes):
            raise TeacherError(f"teacher {meta.id} predicts {list(meta.classes)}, this run trains {list(data.classes)}")
        if meta.data.fingerprint != data.fingerprint:
            raise TeacherError(
                f"teacher {meta.id} was trained on data {meta.data.fingerprint}, this run uses "
                f"{data.fingerprint}: its predictions could leak validation or test faces"
            )
        cache_file = _teacher_cache_file(path, meta, data)
        probs = _read_cached(cache_file, (len(images), len(data.classes)))
        if probs is None:
            model = load_weights(path, meta).to(device)
            probs = predict_logits(model, images, meta.input, device, between_batches=between_batches).softmax(1)
            _write_cache(cache_file, probs)
        total = probs if total is None else total + probs
        provenance.append(
            CheckpointRef(id=meta.id, model=meta.model, data_fingerprint=meta.data.fingerprint, test_accuracy=meta.accuracy)
        )
    if total is None:
        raise TeacherError("distillation needs at least one teacher")
    return total / len(teachers), provenance


def _teacher_cache_file(path: Path, meta: CheckpointMeta, data: FerData) -> Path:
    key = "|".join(
        [CACHE_VERSION, file_digest(path / WEIGHTS_FILE), json.dumps(asdict(meta.input), sort_keys=True), data.fingerprint]
    )
    return default_cache_dir() / "teachers" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.safetensors"


def _read_cached(path: Path, shape: tuple[int, int]) -> torch.Tensor | None:
    """The cached predictions, or None when absent, damaged or of another shape (recomputed, never trusted)."""
    try:
        probs = load_file(str(path))["probs"]
    except Exception:
        return None
    return probs if tuple(probs.shape) == shape and bool(torch.isfinite(probs).all()) else None


def _write_cache(path: Path, probs: torch.Tensor) -> None:
    try:
        write_atomically(path, lambda tmp: save_file({"probs": probs.float().contiguous()}, tmp))
    except OSError:
        pass  # a read-only cache folder only costs the next run the same minutes
