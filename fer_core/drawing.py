"""Boxes with a title drawn onto an RGB image: the photo's numbered faces and the annotated video frames.

Imports no torch (the app's first page draws with it before torch is loaded).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h, as in faces.Box
Color = tuple[int, int, int]  # RGB
DETECTED: Color = (40, 200, 60)
FALLBACK: Color = (255, 150, 0)  # no face found: the crop the models saw instead


def draw_boxes(rgb: np.ndarray, boxes: Sequence[Box], titles: Sequence[str], colors: Sequence[Color]) -> np.ndarray:
    """A copy of `rgb` with each box outlined and its title on a filled strip above it (inside when at the top, shifted
    left when it would leave the image on the right)."""
    out = rgb.copy()
    thickness = max(2, int(round(max(out.shape[:2]) / 400)))
    for (x, y, w, h), title, color in zip(boxes, titles, colors, strict=True):
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thickness)
        scale = float(np.clip(w / 220, 0.5, 2.0))
        (tw, th), base = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = y - th - base - 2 * thickness if y - th - base - 2 * thickness >= 0 else y
        left = max(0, min(x, out.shape[1] - tw - 2 * thickness))  # a face at the right edge keeps its title in view
        cv2.rectangle(out, (left, top), (left + tw + 2 * thickness, top + th + base + 2 * thickness), color, cv2.FILLED)
        cv2.putText(
            out,
            title,
            (left + thickness, top + th + thickness),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            thickness,
            cv2.LINE_AA,
        )
    return out
