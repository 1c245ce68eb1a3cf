"""What a model looks at across the test set, per class: the mean Grad-CAM over correctly classified faces and
over misclassified ones, and how much greying each cell of a grid over the face costs the true class.

Grad-CAM is captum's `LayerGradCam` on the registry's layer (as Explain draws it for one face), computed in
batches with each face's own predicted class as the target (what the model looked at when it said what it said),
each map scaled to [0, 1] before averaging so that no face dominates. Occlusion sensitivity greys one cell of a
REGION_GRID x REGION_GRID grid at a time (the suite's grey) and records the mean drop of the true class's
probability over the class's faces. Faces are a seeded sample of at most FACES_PER_GROUP per class and outcome,
so a model's maps take about a minute on two CPU cores; cached like the robustness runs (failures/cache.py).
FER2013's faces are only roughly aligned: a cell is where a mouth usually is, not where each face has it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch.nn import functional as F

from ..classifier import FerClassifier
from ..data import FerData, to_model_input
from ..records import CheckpointMeta
from ..store import load_predictions
from .cache import read_result, result_file, weights_digest, write_result
from .corruptions import OCCLUSION_GREY

SALIENCY_VERSION = 1
KIND = "saliency"
REGION_GRID = 4  # 4 x 4 cells of 12 px on a 48-px face
FACES_PER_GROUP = 60
BATCH = 64


@dataclass(frozen=True)
class ClassSaliency:
    """Per class (FER2013 label order): mean maps and region costs over the sampled faces."""

    checkpoint: str
    classes: tuple[str, ...]
    correct_maps: np.ndarray  # float32 (C, 48, 48), NaN where the class has no such face
    wrong_maps: np.ndarray  # float32 (C, 48, 48)
    correct_faces: np.ndarray  # int (C,) faces averaged
    wrong_faces: np.ndarray
    mean_faces: np.ndarray  # float32 (C, 48, 48): the mean of the sampled faces, what the maps are drawn over
    region_drop: np.ndarray  # float32 (C, G, G): mean drop of the true class's probability with that cell grey


def _sample(predicted: np.ndarray, labels: np.ndarray, classes: int, seed: int = 0) -> dict[tuple[int, bool], np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = {}
    for c in range(classes):
        for correct in (True, False):
            members = np.flatnonzero((labels == c) & ((predicted == c) == correct))
            groups[(c, correct)] = np.sort(rng.choice(members, min(len(members), FACES_PER_GROUP), replace=False))
    return groups


def _cams(clf: FerClassifier, faces: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Grad-CAM of uint8 faces (N,1,48,48) for their targets, each scaled to [0, 1], on the 48-px face."""
    layer = clf.model.get_submodule(clf.spec.gradcam_layer)
    side, size = faces.shape[-1], clf.input.size
    out = []
    for start in range(0, len(faces), BATCH):
        x = to_model_input(faces[start : start + BATCH].to(clf.device), clf.input)
        cam = LayerGradCam(clf.model, layer).attribute(x, target=targets[start : start + BATCH].tolist(), relu_attributions=True)
        cam = cam.detach().float().mean(1, keepdim=True)
        if clf.input.fit == "crop" and size < side:  # the model saw the centre crop: put its map back in place
            pad = (side - size) // 2
            cam = F.pad(
                LayerAttribution.interpolate(cam, (size, size), interpolate_mode="bilinear"), (pad, side - size - pad) * 2
            )
        else:
            cam = LayerAttribution.interpolate(cam, (side, side), interpolate_mode="bilinear")
        cam = cam[:, 0] - cam[:, 0].amin((1, 2), keepdim=True)
        peak = cam.amax((1, 2), keepdim=True)
        out.append(torch.where(peak > 0, cam / peak.clamp_min(1e-12), cam).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, side, side), np.float32)


def _region_drop(clf: FerClassifier, faces: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(G, G) mean drop of each face's true-class probability when one cell is grey."""
    clean = clf.predict_proba(faces)[np.arange(len(faces)), labels]
    cell = faces.shape[-1] // REGION_GRID
    drop = np.zeros((REGION_GRID, REGION_GRID), np.float32)
    for row in range(REGION_GRID):
        for col in range(REGION_GRID):
            covered = faces.copy()
            covered[:, row * cell : (row + 1) * cell, col * cell : (col + 1) * cell] = OCCLUSION_GREY
            drop[row, col] = float((clean - clf.predict_proba(covered)[np.arange(len(faces)), labels]).mean())
    return drop


def _key(weights: str, fingerprint: str) -> dict[str, str]:
    return {"weights": weights, "data_fingerprint": fingerprint, "saliency_version": str(SALIENCY_VERSION)}


_ARRAYS = ("correct_maps", "wrong_maps", "correct_faces", "wrong_faces", "mean_faces", "region_drop")


def _read(file: Path, key: dict[str, str], checkpoint: str, classes: tuple[str, ...]) -> ClassSaliency | None:
    found = read_result(file, key)
    if found is None or set(found[0]) != set(_ARRAYS):
        return None
    return ClassSaliency(checkpoint, classes, **found[0])


def cached_class_saliency(path: Path, meta: CheckpointMeta) -> ClassSaliency | None:
    """The cached maps of a checkpoint on the data it was trained on, without loading the data or the model."""
    weights = weights_digest(path)
    return _read(result_file(KIND, meta.id, weights), _key(weights, meta.data.fingerprint), meta.id, meta.classes)


def class_saliency(clf: FerClassifier, data: FerData, on_progress: Callable[[float], None] | None = None) -> ClassSaliency:
    """The checkpoint's class-average maps and region costs on its test faces (cached per weights and data);
    `on_progress(fraction)` after each class."""
    if clf.path is None or clf.backend != "torch":
        raise ValueError("class maps need a stored checkpoint on the PyTorch backend (Grad-CAM needs gradients)")
    weights = weights_digest(clf.path)
    file, key = result_file(KIND, clf.id, weights), _key(weights, data.fingerprint)
    cached = _read(file, key, clf.id, clf.classes)
    if cached is not None:
        return cached
    stored = load_predictions(clf.path, clf.meta)
    images = data.take(clf.meta.test_split)[0]
    if len(images) != len(stored.labels):
        raise ValueError(f"{clf.id}'s stored predictions cover {len(stored.labels)} faces, its test split {len(images)}")
    groups = _sample(stored.predicted, stored.labels, len(clf.classes))
    k, side = len(clf.classes), images.shape[-1]
    maps = {True: np.full((k, side, side), np.nan, np.float32), False: np.full((k, side, side), np.nan, np.float32)}
    region = np.zeros((k, REGION_GRID, REGION_GRID), np.float32)
    mean_faces = np.zeros((k, side, side), np.float32)
    for c in range(k):
        for correct in (True, False):
            chosen = groups[(c, correct)]
            if len(chosen):
                maps[correct][c] = _cams(clf, images[chosen], torch.from_numpy(stored.predicted[chosen])).mean(0)
        both = np.concatenate([groups[(c, True)], groups[(c, False)]])
        if len(both):
            faces = images[both][:, 0].numpy()
            mean_faces[c] = faces.mean(0)
            region[c] = _region_drop(clf, faces, stored.labels[both])
        if on_progress:
            on_progress((c + 1) / k)
    result = ClassSaliency(
        clf.id,
        clf.classes,
        maps[True],
        maps[False],
        np.array([len(groups[(c, True)]) for c in range(k)]),
        np.array([len(groups[(c, False)]) for c in range(k)]),
        mean_faces,
        region,
    )
    write_result(file, {name: getattr(result, name) for name in _ARRAYS}, key, {"checkpoint": clf.id})
    return result


def region_heat(region_drop: np.ndarray, side: int = 48) -> np.ndarray:
    """Region costs (C, G, G) as [0, 1] maps on the face (C, side, side), scaled by the model's largest cost over
    every class (so classes compare); a cell whose greying helps the class counts as 0."""
    peak = max(float(region_drop.max()), 1e-6)
    cells = np.clip(region_drop / peak, 0, 1)
    return np.stack([cv2.resize(c.astype(np.float32), (side, side), interpolation=cv2.INTER_NEAREST) for c in cells])
