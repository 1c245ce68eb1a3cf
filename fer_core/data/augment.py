"""Batched augmentation on the training device with kornia: per-sample random parameters, no per-image Python.

kornia draws a separate crop/flip/rotation/jitter for each face of a batch in one tensor op, which
is what keeps the training loop from being limited by PIL transforms in DataLoader workers.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from .choices import AUGMENT_PRESETS


def build_augmentation(preset: str, crop_size: int | None = None) -> nn.Module:
    """A module mapping float faces (N,1,H,W) in [0,1] to augmented faces.

    `crop_size` adds a random crop (the FER VGG recipe trains on 40x40 crops of 48x48 faces).
    """
    if preset not in AUGMENT_PRESETS:
        raise ValueError(f"augmentation preset must be one of {AUGMENT_PRESETS}, not {preset!r}")
    ops: list[nn.Module] = []
    if preset == "light":
        ops += [
            K.RandomHorizontalFlip(),
            K.RandomAffine(degrees=10.0, translate=(0.1, 0.1), scale=(0.9, 1.1), padding_mode="reflection", p=1.0),
        ]
    elif preset == "strong":
        ops += [
            K.RandomHorizontalFlip(),
            K.RandomAffine(degrees=15.0, translate=(0.15, 0.15), scale=(0.8, 1.2), padding_mode="reflection", p=0.9),
            K.ColorJitter(brightness=0.3, contrast=0.3, p=0.8),
            K.RandomErasing(scale=(0.02, 0.15), ratio=(0.3, 3.3), p=0.5),
        ]
    if crop_size is not None:
        # "resample" crops the whole batch with one warp; the default "slice" loops over the faces in Python.
        ops.append(K.RandomCrop((crop_size, crop_size), cropping_mode="resample"))
    return nn.Sequential(*ops) if ops else nn.Identity()


def augment_batch(augmentation: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Augment and clamp back into [0, 1] (colour jitter can overshoot)."""
    with torch.no_grad():
        return augmentation(images).clamp_(0.0, 1.0)
