"""Running a model over uint8 faces in batches: the one path that validation during training, teachers and
FerClassifier share, so every model sees its input prepared the same way (data.to_model_input)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .data import to_model_input
from .input_spec import InputSpec


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    spec: InputSpec,
    device: torch.device,
    batch_size: int = 256,
    channels_last: bool = False,
    between_batches: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Logits for uint8 faces (N,1,H,W), batched; returned on the CPU as float32.

    `between_batches` runs before each batch and may raise: how a training run's Cancel reaches its validation,
    test and teacher passes, which take minutes on a CPU.
    """
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        if between_batches is not None:
            between_batches()
        x = to_model_input(images[start : start + batch_size].to(device, non_blocking=True), spec)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.empty(0)
