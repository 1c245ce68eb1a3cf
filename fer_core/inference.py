"""Running a model over uint8 faces in batches: the one path that validation during training, teachers and
FerClassifier share, so every model sees its input prepared the same way (data.to_model_input)."""

from __future__ import annotations

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
) -> torch.Tensor:
    """Logits for uint8 faces (N,1,H,W), batched; returned on the CPU as float32."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = to_model_input(images[start : start + batch_size].to(device, non_blocking=True), spec)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.empty(0)
