"""Batched augmentation on the training device with kornia: per-sample random parameters, no per-image Python.

kornia draws a separate crop/flip/rotation/jitter for each face of a batch in one tensor op, which
is what keeps the training loop from being limited by PIL transforms in DataLoader workers.

`robust` adds what photos and video do to faces (fer_core.failures.corruptions) on top of `strong`: Gaussian blur,
Gaussian noise, low resolution, wider brightness/contrast and misalignment, grey occlusion. It never uses the
suite's held-out corruptions (`corruptions.HELD_OUT`: motion blur, JPEG, gamma), so their mCE measures robustness
that training did not teach directly. `robust_mix` feeds the same operations through AugMix's mixing of chains
(Hendrycks et al., ICLR 2020) instead of applying them in sequence.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

from .choices import AUGMENT_PRESETS

LOW_RESOLUTION_SIDES = (12, 16, 20, 24, 28, 32, 36)


class RandomNoiseLevel(K.IntensityAugmentationBase2D):
    """Additive Gaussian noise with its sigma drawn per face (kornia's RandomGaussianNoise has one sigma)."""

    def __init__(self, std: tuple[float, float], p: float) -> None:
        super().__init__(p=p)
        self.std = std

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        return {"std": torch.empty(batch_shape[0]).uniform_(*self.std)}

    def apply_transform(self, input, params, flags, transform=None) -> torch.Tensor:
        return input + torch.randn_like(input) * params["std"].to(input).view(-1, 1, 1, 1)


class RandomLowResolution(K.IntensityAugmentationBase2D):
    """A face far from the camera: down to a side drawn per face (area), back up to its size (bilinear).

    kornia has no such operation; faces sharing a side are resampled together, one interpolate pair per side.
    """

    def __init__(self, sides: tuple[int, ...], p: float) -> None:
        super().__init__(p=p)
        self.sides = torch.tensor(sides)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        return {"side": self.sides[torch.randint(len(self.sides), (batch_shape[0],))]}

    def apply_transform(self, input, params, flags, transform=None) -> torch.Tensor:
        out, sides = input.clone(), params["side"].to(input.device)
        for side in sides.unique().tolist():
            faces = sides == side
            small = F.interpolate(input[faces], size=(side, side), mode="area")
            out[faces] = F.interpolate(small, size=input.shape[-2:], mode="bilinear", align_corners=False)
        return out


class AugMix(nn.Module):
    """AugMix on a batch: `width` chains of one to `depth` operations drawn from `ops`, mixed per face with
    Dirichlet weights, then mixed with the face itself by a Beta weight. A chain's operations are drawn per call
    (a chunk of batches); their parameters are drawn per face."""

    def __init__(self, ops: list[nn.Module], width: int = 3, depth: int = 3, alpha: float = 1.0) -> None:
        super().__init__()
        self.ops, self.width, self.depth = nn.ModuleList(ops), width, depth
        self.weights = torch.distributions.Dirichlet(torch.full((width,), alpha))
        self.mix = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha))

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        n = len(faces)
        weights, keep = self.weights.sample((n,)).to(faces), self.mix.sample((n,)).to(faces).view(-1, 1, 1, 1)
        mixed = torch.zeros_like(faces)
        for chain in range(self.width):
            out = faces
            for op in torch.randperm(len(self.ops))[: int(torch.randint(1, self.depth + 1, ()))].tolist():
                out = self.ops[op](out).clamp(0.0, 1.0)
            mixed += weights[:, chain].view(-1, 1, 1, 1) * out
        return keep * faces + (1 - keep) * mixed


def _strong() -> list[nn.Module]:
    return [
        K.RandomHorizontalFlip(),
        K.RandomAffine(degrees=15.0, translate=(0.15, 0.15), scale=(0.8, 1.2), padding_mode="reflection", p=0.9),
        K.ColorJitter(brightness=0.3, contrast=0.3, p=0.8),
        K.RandomErasing(scale=(0.02, 0.15), ratio=(0.3, 3.3), p=0.5),
    ]


def _corruptions(p: float) -> list[nn.Module]:
    """The suite's seen corruptions as training operations, each applied with probability `p`."""
    return [
        K.RandomGaussianBlur(9, sigma=(0.3, 2.0), p=p),
        RandomNoiseLevel(std=(0.01, 0.12), p=p),
        RandomLowResolution(LOW_RESOLUTION_SIDES, p=p),
        K.ColorJitter(brightness=0.4, contrast=(0.2, 1.3), p=p),
        K.RandomErasing(scale=(0.05, 0.25), ratio=(0.3, 3.3), value=0.5, p=p),
    ]


def build_augmentation(preset: str, crop_size: int | None = None) -> nn.Module:
    """A module mapping float faces (N,1,H,W) in [0,1] to augmented faces.

    `crop_size` adds a random crop (the FER VGG recipe trains on 40x40 crops of 48x48 faces).
    """
    if preset not in AUGMENT_PRESETS:
        raise ValueError(f"augment must be one of {AUGMENT_PRESETS}, not {preset!r}")
    ops: list[nn.Module] = []
    if preset == "light":
        ops += [
            K.RandomHorizontalFlip(),
            K.RandomAffine(degrees=10.0, translate=(0.1, 0.1), scale=(0.9, 1.1), padding_mode="reflection", p=1.0),
        ]
    elif preset == "strong":
        ops += _strong()
    elif preset == "robust":
        ops += _strong() + _corruptions(p=0.2)
    elif preset == "robust_mix":
        ops += _strong() + [AugMix(_corruptions(p=1.0))]
    if crop_size is not None:
        # "resample" crops the whole batch with one warp; the default "slice" loops over the faces in Python.
        ops.append(K.RandomCrop((crop_size, crop_size), cropping_mode="resample"))
    return nn.Sequential(*ops) if ops else nn.Identity()


def augment_batch(augmentation: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Augment and clamp back into [0, 1] (colour jitter can overshoot)."""
    with torch.no_grad():
        return augmentation(images).clamp_(0.0, 1.0)
