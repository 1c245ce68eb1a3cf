"""The one function that turns uint8 faces into what a model expects.

Training, evaluation, prediction and explanation all call `to_model_input`, so a model always sees
its input resized (or centre-cropped), channel-adapted and normalised the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..input_spec import MEAN, STD, InputSpec


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N,1,H,W) -> float in [0, 1]; floats pass through unchanged."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def to_model_input(images: torch.Tensor, spec: InputSpec, already_cropped: bool = False) -> torch.Tensor:
    """uint8 or [0,1] float faces (N,1,H,W) -> normalised float tensor (N, C, size, size).

    `already_cropped` is set by training, whose augmentation has taken a random crop of `spec.size`.
    """
    x = to_float(images)
    if x.shape[-1] != spec.size or x.shape[-2] != spec.size:
        if spec.fit == "crop" and not already_cropped and min(x.shape[-2:]) >= spec.size:
            x = center_crop(x, spec.size)
        else:
            x = F.interpolate(x, size=(spec.size, spec.size), mode="bilinear", align_corners=False, antialias=True)
    x = (x - MEAN) / STD
    if spec.channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    elif spec.channels == 1 and x.shape[1] == 3:
        x = x.mean(dim=1, keepdim=True)
    return x.contiguous()
