"""Why a model predicted what it did: Grad-CAM, Integrated Gradients and feature-map grids (captum)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerActivation, LayerAttribution, LayerGradCam
from torch import nn

from .classifier import FerClassifier
from .data import FerData, to_model_input


@dataclass(frozen=True)
class Attribution:
    method: str
    target: str  # class explained
    heatmap: np.ndarray  # float (H, W) in [0, 1], at the face's resolution
    overlay: np.ndarray  # RGB uint8 (H, W, 3): heat map blended over the face
    probability: float  # the model's probability for `target`
    # share of the face with any evidence for `target`: Grad-CAM keeps only what raises the class's score (ReLU), so
    # for an improbable class a few specks, scaled to the full colour range, can be all there is
    support: float = 1.0

    def scant(self) -> bool:
        """Whether the map is mostly empty: what it shows is a little evidence scaled up, not where the model looks."""
        return self.support < SCANT_SUPPORT


def _face_tensor(face: np.ndarray) -> torch.Tensor:
    face = np.asarray(face, dtype=np.uint8)
    if face.ndim != 2:
        raise ValueError("a face must be a 2-D uint8 grayscale image")
    return torch.from_numpy(face.copy())[None, None]


def _colours(values: np.ndarray) -> np.ndarray:
    """[0,1] values -> RGB uint8 with the JET colour map (blue low, red high) the overlays use."""
    return cv2.cvtColor(cv2.applyColorMap((255 * np.clip(values, 0, 1)).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def colour_scale(width: int = 192, height: int = 10) -> np.ndarray:
    """The overlays' colour scale as an RGB bar, low (left) to high (right)."""
    return _colours(np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1)))


def overlay_heatmap(face: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a [0,1] heat map (JET colours) over a grayscale face; both at the face's size."""
    heat = cv2.resize(heatmap.astype(np.float32), (face.shape[1], face.shape[0]), interpolation=cv2.INTER_LINEAR)
    colored = _colours(heat)
    base = cv2.cvtColor(face, cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(base, 1 - alpha, colored, alpha, 0)


def _normalise(a: np.ndarray) -> np.ndarray:
    """Scaled to [0, 1]; a flat map (a 1x1 Grad-CAM layer upsampled) stays flat instead of stretching float noise."""
    spread = a - a.min()
    peak = spread.max()
    return spread / peak if peak > 1e-6 * max(float(np.abs(a).max()), 1e-12) else np.zeros_like(a)


def _target(clf: FerClassifier, x: torch.Tensor, target: str | None) -> tuple[int, float]:
    with torch.inference_mode():
        probs = clf.model(x).softmax(1)[0]
    idx = int(probs.argmax()) if target is None else clf.classes.index(target)
    return idx, float(probs[idx])


def _prepare(clf: FerClassifier, face: np.ndarray) -> torch.Tensor:
    if clf.backend != "torch":
        raise ValueError(f"explanations need the model's gradients: load {clf.id} with backend='torch', not {clf.backend}")
    return to_model_input(_face_tensor(face).to(clf.device), clf.input)


def grad_cam(clf: FerClassifier, face: np.ndarray, target: str | None = None) -> Attribution:
    """Classic Grad-CAM (ReLU of gradient-weighted activations) on the registry's layer, upsampled to the face.

    `target` is a class name; None explains the predicted class.
    """
    x = _prepare(clf, face)
    idx, prob = _target(clf, x, target)
    layer = clf.model.get_submodule(clf.spec.gradcam_layer)
    cam = LayerGradCam(clf.model, layer).attribute(x, target=idx, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam.detach(), (face.shape[0], face.shape[1]), interpolate_mode="bilinear")
    raw = cam[0].mean(0).cpu().numpy()
    heat = _normalise(raw)
    support = float((raw > 1e-6 * max(float(raw.max()), 1e-12)).mean())
    return Attribution("Grad-CAM", clf.classes[idx], heat, overlay_heatmap(face, heat), prob, support)


def integrated_gradients(clf: FerClassifier, face: np.ndarray, target: str | None = None, steps: int = 32) -> Attribution:
    """Integrated Gradients from a mid-grey baseline: pixel-level evidence, a finer view than Grad-CAM."""
    x = _prepare(clf, face)
    idx, prob = _target(clf, x, target)
    attr = IntegratedGradients(clf.model).attribute(
        x, baselines=torch.zeros_like(x), target=idx, n_steps=steps, internal_batch_size=steps
    )
    heat = attr[0].abs().sum(0, keepdim=True)[None]
    heat = nn.functional.interpolate(heat, size=face.shape, mode="bilinear", align_corners=False)[0, 0]
    heat = _normalise(cv2.GaussianBlur(heat.detach().cpu().numpy(), (0, 0), IG_BLUR_PX))
    return Attribution("Integrated Gradients", clf.classes[idx], heat, overlay_heatmap(face, heat), prob)


SCANT_SUPPORT = 0.1  # below this share of the face with evidence, Explain says the map is mostly empty
IG_BLUR_PX = 2.0  # Gaussian sigma: single-pixel attributions of a 48x48 face are speckle; regions are what one reads
METHODS = {"Grad-CAM": grad_cam, "Integrated Gradients": integrated_gradients}
HOW_TO_READ = {
    "Grad-CAM": "Where the features of the model's deepest map of at least 2x2 cells (its last convolutional stage) "
    "raised the explained class: red most, blue least. Coarse by design: that layer's few cells, upsampled to the face.",
    "Integrated Gradients": "How much each pixel moved the explained class's score on the way from a mid-grey image to "
    f"this face (absolute, blurred with a {IG_BLUR_PX:.0f} px Gaussian so regions show, not single pixels): red most, "
    "blue none.",
}


def feature_layers(clf: FerClassifier) -> list[str]:
    """Names of the modules whose output is a 4-D feature map, in forward order."""
    names: list[str] = []
    hooks = []
    for name, module in clf.model.named_modules():
        if not name or isinstance(module, (nn.ReLU, nn.Dropout, nn.Identity)):
            continue

        def hook(mod, inp, out, name=name):
            if isinstance(out, torch.Tensor) and out.ndim == 4 and name not in names:
                names.append(name)

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            clf.model(_prepare(clf, np.zeros((48, 48), np.uint8)))
    finally:
        for h in hooks:
            h.remove()
    return names


def feature_maps(clf: FerClassifier, face: np.ndarray, layer: str, max_maps: int = 64) -> np.ndarray:
    """Activations of `layer` (channels, h, w), the most active `max_maps` channels first."""
    module = clf.model.get_submodule(layer)
    with torch.no_grad():
        act = LayerActivation(clf.model, module).attribute(_prepare(clf, face))
    if isinstance(act, tuple):
        act = act[0]
    if act.ndim != 4:
        raise ValueError(f"layer {layer!r} does not output a feature map")
    maps = act[0].float().cpu()
    order = maps.flatten(1).abs().mean(1).argsort(descending=True)[:max_maps]
    return maps[order].numpy()


def feature_grid(maps: np.ndarray, cell: int = 48, pad: int = 2) -> np.ndarray:
    """A grayscale grid image of feature maps, each normalised on its own."""
    n = len(maps)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.full((rows * (cell + pad) + pad, cols * (cell + pad) + pad), 255, np.uint8)
    for i, m in enumerate(maps):
        r, c = divmod(i, cols)
        tile = cv2.resize((255 * _normalise(m)).astype(np.uint8), (cell, cell), interpolation=cv2.INTER_NEAREST)
        y, x = pad + r * (cell + pad), pad + c * (cell + pad)
        grid[y : y + cell, x : x + cell] = tile
    return grid


def penultimate_features(clf: FerClassifier, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The input of the model's last linear layer for uint8 faces (N,48,48): what the classifier separates."""
    last = [m for m in clf.model.modules() if isinstance(m, nn.Linear)][-1]
    captured: list[torch.Tensor] = []
    handle = last.register_forward_pre_hook(lambda mod, inp: captured.append(inp[0].detach().flatten(1).float().cpu()))
    try:
        faces_t = torch.as_tensor(np.asarray(faces, dtype=np.uint8))[:, None]
        clf.logits(faces_t, batch_size=batch_size)
    finally:
        handle.remove()
    return torch.cat(captured).numpy()


@dataclass(frozen=True)
class FaceEmbedding:
    xy: np.ndarray  # (n, 2) t-SNE coordinates
    faces: np.ndarray  # (n, 48, 48) uint8
    labels: list[str]
    predicted: list[str]


def embed_test_faces(clf: FerClassifier, data: FerData, n: int, seed: int = 0) -> FaceEmbedding:
    """t-SNE map of the penultimate features of n test faces drawn at random; seeded, so a rerun shows the same map."""
    from .evaluation import embedding_2d

    if tuple(data.classes) != clf.classes:
        raise ValueError(f"{clf.id} predicts {list(clf.classes)}, the data has {list(data.classes)}")
    test = data.indices("test").numpy()
    pick = np.sort(np.random.default_rng(seed).choice(test, size=min(n, len(test)), replace=False))
    faces = data.images[pick, 0].numpy()
    predicted = clf.predict_proba(faces).argmax(1)
    return FaceEmbedding(
        embedding_2d(penultimate_features(clf, faces), seed),
        faces,
        [clf.classes[i] for i in data.labels.numpy()[pick]],
        [clf.classes[i] for i in predicted],
    )
