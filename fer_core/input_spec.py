"""What a model expects as input: size, channels, how a face is fitted, and the normalisation.

Kept free of torch so that listing models and checkpoints (the app's Overview, `fer_core checkpoints`)
never pays for importing it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Grayscale faces are scaled to [-1, 1]; torchvision families fold ImageNet's per-channel statistics
# into their first convolution instead (see models/torchvision_zoo.py), so one normalisation serves all.
MEAN = 0.5
STD = 0.5


@dataclass(frozen=True)
class InputSpec:
    size: int = 48  # square input side the model expects
    channels: int = 1
    fit: str = "resize"  # "resize" to `size`, or "crop": centre crop at inference, random crop in training


# Test-time augmentation: the face as it is, plus its mirror image, or ten crops (centre and corners, mirrored).
TTA_MODES = ("none", "flip", "tencrop")
