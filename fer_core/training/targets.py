"""What each training face is trained towards: its label, its FER+ vote shares, or teachers' predictions mixed in.

Distillation here is offline (Hinton et al. 2015 at temperature 1): the teachers predict every training
face once, unaugmented, before the first epoch, so a student costs no more per step than plain training.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..data import FerData
from .config import TrainConfig

TEACHER_CHUNK = 2048  # faces predicted between two looks at should_stop (seconds on a CPU)


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
        raise TeacherError(f"teacher predictions {tuple(teacher_probs.shape)} do not match the training split {tuple(base.shape)}")
    return (1.0 - cfg.teacher_weight) * base + cfg.teacher_weight * teacher_probs.float()


def teacher_probabilities(teachers: tuple[str, ...] | list[str], data: FerData, root: Path | None = None,
                          device: str | torch.device = "cpu", should_stop: Callable[[], bool] | None = None,
                          ) -> tuple[torch.Tensor, list[dict]]:
    """Mean probability of the teachers on every training face, and what each teacher was (for meta.json).

    A teacher must predict the same classes and must have been trained on the same data (equal
    fingerprint): one trained on other splits could carry this run's validation or test faces into training.
    `should_stop` is asked between chunks of faces: on a CPU the teachers take minutes, and Cancel must work.
    Each teacher's predictions are cached on disk (keyed by its weights and the data), so the next student
    taught by the same checkpoint starts at once.
    """
    from ..classifier import load_checkpoint
    from .loop import TrainingCancelled

    images, _ = data.take("train")
    total, provenance = None, []
    for teacher in teachers:
        clf = load_checkpoint(teacher, root, device)
        if clf.classes != tuple(data.classes):
            raise TeacherError(f"teacher {clf.id} predicts {list(clf.classes)}, this run trains {list(data.classes)}")
        trained_on = clf.meta.get("data", {}).get("fingerprint")
        if trained_on != data.fingerprint:
            raise TeacherError(f"teacher {clf.id} was trained on data {trained_on}, this run uses {data.fingerprint}: "
                               "its predictions could leak validation or test faces")
        cache_file = _teacher_cache_file(clf, data)
        probs = _read_cached(cache_file, (len(images), len(data.classes)))
        if probs is None:
            chunks = []
            for start in range(0, len(images), TEACHER_CHUNK):
                if should_stop and should_stop():
                    raise TrainingCancelled(f"cancelled while teacher {clf.id} was predicting")
                chunks.append(clf.logits(images[start : start + TEACHER_CHUNK]).softmax(1))
            probs = torch.cat(chunks)
            _write_cache(cache_file, probs)
        total = probs if total is None else total + probs
        provenance.append({"id": clf.id, "model": clf.spec.name, "data_fingerprint": trained_on,
                           "test_accuracy": clf.meta.get("test_metrics", {}).get("accuracy")})
    if total is None:
        raise TeacherError("distillation needs at least one teacher")
    return total / len(teachers), provenance


def _teacher_cache_file(clf, data: FerData) -> Path:
    from ..data.disk_cache import CACHE_VERSION, default_cache_dir, file_digest
    from ..store import WEIGHTS_FILE

    key = "|".join([CACHE_VERSION, file_digest(clf.path / WEIGHTS_FILE), json.dumps(clf.meta.get("input"), sort_keys=True),
                    data.fingerprint])
    return default_cache_dir() / "teachers" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.safetensors"


def _read_cached(path: Path, shape: tuple[int, int]) -> torch.Tensor | None:
    """The cached predictions, or None when absent, damaged or of another shape (recomputed, never trusted)."""
    from safetensors.torch import load_file

    try:
        probs = load_file(str(path))["probs"]
    except Exception:
        return None
    return probs if tuple(probs.shape) == shape and bool(torch.isfinite(probs).all()) else None


def _write_cache(path: Path, probs: torch.Tensor) -> None:
    from safetensors.torch import save_file

    from ..data.disk_cache import write_atomically

    try:
        write_atomically(path, lambda tmp: save_file({"probs": probs.float().contiguous()}, tmp))
    except OSError:
        pass  # a read-only cache folder only costs the next run the same minutes
