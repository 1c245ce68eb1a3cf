"""Photo -> face crops ready for any model: safe decoding, EXIF orientation, detection, 48x48 grayscale crops."""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .choices import DEFAULT_DETECTOR, DETECTOR_NAMES
from .data import IMAGE_SIZE

MAX_PIXELS = 100_000_000  # 10k x 10k; larger images (or files claiming to be) are refused before decoding
# Detection runs on a copy downscaled to this longest side: MTCNN's smallest face (20 px) is then 40 px in a
# 1280 px photo, below what a 48x48 expression model can use anyway, and detection costs ~4x less than at 1280.
DETECTION_SIDE = 640
MIN_FACE = 20  # px in the downscaled copy: MTCNN's own default
# A large JPEG is decoded at a reduced size (libjpeg's DCT scaling: a 12 MP phone photo ~3x faster) whose longest
# side stays at least this: the smallest face the detector finds (MIN_FACE px at DETECTION_SIDE) is still 48 px.
DECODE_SIDE = DETECTION_SIDE * IMAGE_SIZE // MIN_FACE
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL's decompression-bomb guard stays on, at our limit


class PhotoError(ValueError):
    """An upload or file that is not a usable image; the message is meant for the user."""


@dataclass(frozen=True)
class Photo:
    rgb: np.ndarray  # uint8 (H, W, 3), upright; a large JPEG at a reduced size (DECODE_SIDE)
    scale: float = 1.0  # pixels of the file per pixel of `rgb`: boxes found in `rgb` times this are the file's


def load_photo(source: bytes | str | Path | Image.Image | np.ndarray) -> np.ndarray:
    """Any image file or buffer -> RGB uint8 (H, W, 3), upright (EXIF orientation applied)."""
    return decode_photo(source).rgb


def decode_photo(source: bytes | str | Path | Image.Image | np.ndarray) -> Photo:
    """Any image file or buffer, decoded safely, upright, and with the scale back to the file's pixels. A file that
    cannot be read raises its OSError (missing is not damaged); one that cannot be decoded, a PhotoError."""
    if isinstance(source, np.ndarray):
        arr = source if source.ndim == 3 else np.stack([source] * 3, axis=-1)
        return Photo(np.ascontiguousarray(arr[..., :3].astype(np.uint8)))
    if isinstance(source, (str, Path)):
        source = Path(source).read_bytes()
    try:
        if isinstance(source, Image.Image):
            img = source
        else:
            data = bytes(source)
            if not data:
                raise PhotoError("the file is empty (0 bytes)")
            with warnings.catch_warnings():  # the size is checked below, after a JPEG's reduced-size draft
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
        full_width = img.size[0]
        if img.format == "JPEG" and max(img.size) > DECODE_SIDE:
            k = DECODE_SIDE / max(img.size)  # the reduced size keeps the longest side at DECODE_SIDE or more
            img.draft("RGB", (math.ceil(img.size[0] * k), math.ceil(img.size[1] * k)))
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise PhotoError(f"the image is {w}x{h} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels")
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)  # animated: the first frame is used
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
        scale = full_width / w
        return Photo(_to_rgb(ImageOps.exif_transpose(img)), scale)
    except PhotoError:
        raise
    except UnidentifiedImageError:
        raise PhotoError("not an image file (or an unsupported format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PhotoError(f"refused as a possible decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PhotoError(f"the image is damaged or truncated ({exc})") from None


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = np.zeros_like(arr) if hi == lo else (arr - lo) * (255.0 / (hi - lo))
        img = Image.fromarray(arr.astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "P", "PA") or "transparency" in img.info:
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


Box = tuple[int, int, int, int]  # x, y, w, h in pixels


class FaceDetector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Box]: ...


class HaarDetector:
    """OpenCV's bundled frontal-face Haar cascade: fast, but fires on textures (logos, clothing)."""

    name = "haar"

    def __init__(self) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]  # not in its stubs
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f"OpenCV's Haar cascade is missing ({path}); install opencv-python-headless 4.x")

    def detect(self, rgb: np.ndarray) -> list[Box]:
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        found = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=6, minSize=(24, 24))
        return [(int(x), int(y), int(w), int(h)) for x, y, w, h in found]


class MtcnnDetector:
    """MTCNN (Zhang et al. 2016) from facenet-pytorch; its weights ship inside the wheel."""

    name = "mtcnn"

    def __init__(self, min_confidence: float = 0.9) -> None:
        import torch
        from facenet_pytorch import MTCNN

        self.min_confidence = min_confidence
        self.mtcnn = MTCNN(keep_all=True, device=torch.device("cpu"), min_face_size=MIN_FACE)
        # channels_last weights make its convolutions and max pooling take oneDNN's faster paths, with the same
        # boxes (measured in bench/RESULTS.md, "Inference").
        for net in (self.mtcnn.pnet, self.mtcnn.rnet, self.mtcnn.onet):
            net.to(memory_format=torch.channels_last)

    def detect(self, rgb: np.ndarray) -> list[Box]:
        import torch

        with torch.inference_mode():
            boxes, probs = self.mtcnn.detect(Image.fromarray(rgb))
        if boxes is None:
            return []
        out = []
        for (x1, y1, x2, y2), p in zip(boxes, probs, strict=True):
            if p is not None and p >= self.min_confidence:
                out.append((int(x1), int(y1), int(round(x2 - x1)), int(round(y2 - y1))))
        return out


DETECTORS: dict[str, type[FaceDetector]] = dict(zip(DETECTOR_NAMES, (MtcnnDetector, HaarDetector), strict=True))


@cache
def get_detector(name: str = DEFAULT_DETECTOR) -> FaceDetector:
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose from {', '.join(DETECTORS)}")
    return DETECTORS[name]()


SMALL_IMAGE = "small image used whole as the face (no detection)"  # a face crop already, as FER2013's are
NO_FACE = "no face detected: the centred square is used"


@dataclass(frozen=True)
class Face:
    box: Box  # in the image the faces were found in (Photo.scale maps a decoded photo's boxes to its file)
    detected: bool  # False: no face was found and the centred square (or the whole small image) is used
    face: np.ndarray  # uint8 (48, 48) grayscale
    note: str = ""


def crop_face(gray: np.ndarray, box: Box, margin: float = 0.15) -> np.ndarray:
    """Square crop around `box` enlarged by `margin` on each side, clipped to the photo, resized to 48x48."""
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * margin)))
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    H, W = gray.shape
    x0c, y0c, x1c, y1c = max(0, x0), max(0, y0), min(W, x0 + side), min(H, y0 + side)
    crop = gray[y0c:y1c, x0c:x1c]
    if crop.size == 0:
        crop = gray
    return cv2.resize(
        crop, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA if crop.shape[0] > IMAGE_SIZE else cv2.INTER_LINEAR
    )


def detect_faces(
    rgb: np.ndarray, detector: str | FaceDetector = DEFAULT_DETECTOR, margin: float = 0.15, side: int = DETECTION_SIDE
) -> list[Face]:
    """The faces a detector finds in an RGB image, largest first, run on a copy downscaled to `side` pixels
    (the smallest face found is then MIN_FACE * longest side / `side`); none found: an empty list."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    H, W = gray.shape
    det = get_detector(detector) if isinstance(detector, str) else detector
    scale = min(1.0, side / max(H, W))
    small = cv2.resize(rgb, (int(W * scale), int(H * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    boxes = [
        _inside(round(x / scale), round(y / scale), round(w / scale), round(h / scale), W, H) for x, y, w, h in det.detect(small)
    ]
    boxes = [b for b in boxes if b[2] > 0 and b[3] > 0]
    boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
    return [Face(b, True, crop_face(gray, b, margin)) for b in boxes]


def _inside(x: int, y: int, w: int, h: int, width: int, height: int) -> Box:
    """A detector's box clipped to the image (MTCNN's reach past the edge for a face cut by it)."""
    x0, y0 = min(max(0, x), width), min(max(0, y), height)
    return (x0, y0, max(0, min(width, x + w) - x0), max(0, min(height, y + h) - y0))


def find_faces(rgb: np.ndarray, detector: str | FaceDetector = DEFAULT_DETECTOR, margin: float = 0.15) -> list[Face]:
    """Every face in an RGB photo, largest first; a centred square crop when none is found."""
    H, W = rgb.shape[:2]
    if max(H, W) <= 2 * IMAGE_SIZE:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return [
            Face(
                (0, 0, W, H),
                False,
                cv2.resize(gray, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA),
                SMALL_IMAGE,
            )
        ]
    faces = detect_faces(rgb, detector, margin)
    if faces:
        return faces
    side = min(H, W)
    box = ((W - side) // 2, (H - side) // 2, side, side)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return [Face(box, False, crop_face(gray, box, margin=0.0), NO_FACE)]
