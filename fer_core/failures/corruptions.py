"""The robustness suite: what real photos and video do to a face, as deterministic functions on uint8 faces.

Each corruption has five severities (the flip control has one); severity 0 is the face as it is. Built on OpenCV
(blur kernels, JPEG codec, resampling, affine warps) and numpy, both already dependencies: the operations are
single calls there and run on 3,589 faces in well under a second, with no tensor round trip. Random parts (noise,
the direction of motion blur and shifts, which side is covered, where a patch falls) come from a generator seeded
by the suite and the corruption, not the severity: every run, model and machine sees the same corrupted faces, and
a higher severity moves the same face the same way, further.

FER2013's faces are only roughly aligned: the eye and mouth bands cover the rows where eyes and mouths usually
are (about rows 12-22 and 31-41 of 48), not where each face has them.

Changing any definition here changes results: bump SUITE_VERSION, which invalidates every cached result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

SUITE_VERSION = 1
SUITE_SEED = 20261203
OCCLUSION_GREY = 128
EYE_ROW, MOUTH_ROW = 17, 36  # band centres on the 48-px face

Faces = np.ndarray  # uint8 (N, H, W)


@dataclass(frozen=True)
class Corruption:
    """One kind of degradation: its levels (one per severity, 1-based) and what a level means."""

    name: str
    group: str  # noise, blur, digital, light, occlusion, geometry, control
    levels: tuple[float, ...]
    unit: str  # what a level is, for people: "sigma in grey levels", "JPEG quality", ...
    apply: Callable[[Faces, float, np.random.Generator], Faces]
    control: bool = False  # a sanity check (flip), left out of mCE

    @property
    def severities(self) -> tuple[int, ...]:
        return tuple(range(1, len(self.levels) + 1))

    def describe(self) -> str:
        return f"{self.name}: {self.unit} " + ", ".join(f"{s}={v:g}" for s, v in zip(self.severities, self.levels, strict=True))


def _per_face(faces: Faces, op: Callable[[np.ndarray], np.ndarray]) -> Faces:
    return np.stack([op(face) for face in faces]) if len(faces) else faces.copy()


def _clip(values: np.ndarray) -> Faces:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _gaussian_noise(faces: Faces, sigma: float, rng: np.random.Generator) -> Faces:
    return _clip(faces + rng.normal(0.0, sigma, faces.shape))


def _gaussian_blur(faces: Faces, sigma: float, rng: np.random.Generator) -> Faces:
    return _per_face(faces, lambda f: cv2.GaussianBlur(f, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT))


def _line_kernel(length: int, angle: float) -> np.ndarray:
    kernel = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = np.cos(angle) * c, np.sin(angle) * c
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
    return kernel / kernel.sum()


def _motion_blur(faces: Faces, length: float, rng: np.random.Generator) -> Faces:
    angles = rng.uniform(0, np.pi, len(faces))  # each face moves its own way
    out = [
        cv2.filter2D(f, -1, _line_kernel(int(length), a), borderType=cv2.BORDER_REFLECT)
        for f, a in zip(faces, angles, strict=True)
    ]
    return np.stack(out) if out else faces.copy()


def _jpeg(faces: Faces, quality: float, rng: np.random.Generator) -> Faces:
    def roundtrip(face: np.ndarray) -> np.ndarray:
        _, encoded = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        return np.asarray(cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE))

    return _per_face(faces, roundtrip)


def _low_resolution(faces: Faces, side: float, rng: np.random.Generator) -> Faces:
    h, w = faces.shape[1:]
    small = (int(side), int(side))
    return _per_face(
        faces, lambda f: cv2.resize(cv2.resize(f, small, interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_LINEAR)
    )


def _brightness(faces: Faces, shift: float, rng: np.random.Generator) -> Faces:
    return _clip(faces.astype(np.float32) + shift)


def _contrast(faces: Faces, factor: float, rng: np.random.Generator) -> Faces:
    mean = faces.reshape(len(faces), -1).mean(axis=1)[:, None, None] if len(faces) else 0.0
    return _clip((faces - mean) * factor + mean)


def _underexposure(faces: Faces, gamma: float, rng: np.random.Generator) -> Faces:
    return _clip(255.0 * (faces / 255.0) ** gamma)


def _band(centre: int) -> Callable[[Faces, float, np.random.Generator], Faces]:
    def cover(faces: Faces, height: float, rng: np.random.Generator) -> Faces:
        out = faces.copy()
        top = centre - int(height) // 2
        out[:, max(top, 0) : top + int(height)] = OCCLUSION_GREY
        return out

    return cover


def _half(faces: Faces, width: float, rng: np.random.Generator) -> Faces:
    out, w = faces.copy(), int(width)
    for face, left in zip(out, rng.random(len(faces)) < 0.5, strict=True):
        face[:, slice(0, w) if left else slice(face.shape[1] - w, None)] = OCCLUSION_GREY
    return out


def _patch(faces: Faces, side: float, rng: np.random.Generator) -> Faces:
    out, s = faces.copy(), int(side)
    h, w = faces.shape[1:]
    places = rng.random((len(faces), 2))  # the same place at every severity: a larger patch over the same spot
    tops, lefts = (places[:, 0] * (h - s + 1)).astype(int), (places[:, 1] * (w - s + 1)).astype(int)
    for face, top, left in zip(out, tops, lefts, strict=True):
        face[top : top + s, left : left + s] = OCCLUSION_GREY
    return out


def _warp(faces: Faces, matrices: list[np.ndarray]) -> Faces:
    h, w = faces.shape[1:]
    out = [
        cv2.warpAffine(f, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        for f, m in zip(faces, matrices, strict=True)
    ]
    return np.stack(out) if out else faces.copy()


def _shift(faces: Faces, pixels: float, rng: np.random.Generator) -> Faces:
    angles = rng.uniform(0, 2 * np.pi, len(faces))
    return _warp(faces, [np.array([[1, 0, pixels * np.cos(a)], [0, 1, pixels * np.sin(a)]], np.float32) for a in angles])


def _centred(faces: Faces, angle: float, scale: float) -> np.ndarray:
    h, w = faces.shape[1:]
    return cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)


def _rotation(faces: Faces, degrees: float, rng: np.random.Generator) -> Faces:
    signs = rng.choice([-1.0, 1.0], len(faces))
    return _warp(faces, [_centred(faces, degrees * s, 1.0) for s in signs])


def _scale(faces: Faces, factor: float, rng: np.random.Generator) -> Faces:
    zoom_in = rng.random(len(faces)) < 0.5  # a detector's box too small (zoom in) or too large (zoom out)
    return _warp(faces, [_centred(faces, 0.0, factor if z else 1.0 / factor) for z in zoom_in])


def _flip(faces: Faces, _: float, rng: np.random.Generator) -> Faces:
    return faces[:, :, ::-1].copy()


SUITE: tuple[Corruption, ...] = (
    Corruption("gaussian_noise", "noise", (5, 10, 15, 20, 30), "sigma in grey levels", _gaussian_noise),
    Corruption("gaussian_blur", "blur", (0.5, 0.75, 1.0, 1.5, 2.0), "sigma in pixels", _gaussian_blur),
    Corruption("motion_blur", "blur", (3, 5, 7, 9, 13), "streak length in pixels, random direction", _motion_blur),
    Corruption("jpeg", "digital", (50, 30, 20, 10, 5), "JPEG quality", _jpeg),
    Corruption("low_resolution", "digital", (36, 28, 24, 16, 12), "side in pixels before upscaling to 48", _low_resolution),
    Corruption("brightness", "light", (20, 40, 60, 80, 100), "grey levels added", _brightness),
    Corruption("contrast", "light", (0.7, 0.5, 0.4, 0.3, 0.2), "contrast factor about the face's mean", _contrast),
    Corruption("underexposure", "light", (1.5, 2.0, 2.5, 3.0, 4.0), "gamma (darker above 1)", _underexposure),
    Corruption(
        "occlusion_eyes", "occlusion", (4, 6, 8, 10, 12), f"grey band height in pixels about row {EYE_ROW}", _band(EYE_ROW)
    ),
    Corruption(
        "occlusion_mouth", "occlusion", (4, 6, 8, 10, 12), f"grey band height in pixels about row {MOUTH_ROW}", _band(MOUTH_ROW)
    ),
    Corruption("occlusion_half", "occlusion", (8, 12, 16, 20, 24), "grey columns from a random side, in pixels", _half),
    Corruption("occlusion_patch", "occlusion", (8, 12, 16, 20, 24), "grey square side in pixels, random place", _patch),
    Corruption("shift", "geometry", (2, 4, 6, 8, 10), "pixels in a random direction", _shift),
    Corruption("rotation", "geometry", (5, 10, 15, 20, 30), "degrees, random sign", _rotation),
    Corruption("scale", "geometry", (1.05, 1.1, 1.15, 1.2, 1.3), "zoom factor, in or out at random", _scale),
    Corruption("flip", "control", (1,), "horizontal mirror (a control: faces are roughly symmetric)", _flip, control=True),
)
CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in SUITE}
# Never used by training (the `robust` augmentation presets, fer_core.data.augment): one of each kind of degradation
# that training does imitate (blur: Gaussian only; digital: noise and low resolution; light: linear brightness and
# contrast), so their mCE shows robustness that carries over, not robustness taught. Changing it changes no result
# (it splits scores), so it needs no new SUITE_VERSION.
HELD_OUT = ("motion_blur", "jpeg", "underexposure")


def get_corruption(name: str) -> Corruption:
    try:
        return CORRUPTIONS[name]
    except KeyError:
        raise ValueError(f"unknown corruption {name!r}; the suite has {', '.join(CORRUPTIONS)}") from None


def corrupt(faces: Faces, name: str, severity: int) -> Faces:
    """The faces under one corruption at one severity (0: unchanged); the same input gives the same output."""
    corruption = get_corruption(name)
    if severity == 0:
        return faces.copy()
    if severity not in corruption.severities:
        raise ValueError(f"{name} has severities {', '.join(map(str, corruption.severities))}, not {severity}")
    rng = np.random.default_rng((SUITE_SEED, SUITE.index(corruption)))  # severity scales the same draws
    return corruption.apply(np.ascontiguousarray(faces, np.uint8), corruption.levels[severity - 1], rng)
