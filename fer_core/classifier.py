"""FerClassifier: a loaded checkpoint that turns 48x48 grayscale faces into class probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .choices import BACKENDS
from .data import FerData, to_model_input
from .data.preprocess import center_crop
from .inference import predict_logits
from .input_spec import TTA_MODES, InputSpec
from .models import ModelSpec, get_spec
from .records import CheckpointMeta, Predictions
from .store import load_weights, read_meta, resolve_checkpoint


class FerClassifier:
    """A trained model plus its classes and input recipe; what notebooks, the CLI and the app use."""

    def __init__(self, model: nn.Module, meta: CheckpointMeta, path: Path | None = None, backend: str = "torch") -> None:
        self.model = model.eval()
        self.backend = backend  # "torch", or "onnxruntime" (export.OrtModule: predictions only, no gradients)
        self.meta = meta
        self.path = path
        self.id: str = meta.id or (path.name if path else meta.model)
        self.spec: ModelSpec = get_spec(meta.model)
        self.classes: tuple[str, ...] = meta.classes
        self.input: InputSpec = meta.input

    def __repr__(self) -> str:
        return f"FerClassifier({self.id!r}, model={self.spec.name!r}, classes={len(self.classes)})"

    @property
    def device(self) -> torch.device:
        weight = next(self.model.parameters(), None)  # ONNX Runtime's module holds none: it runs on the CPU
        return weight.device if weight is not None else torch.device("cpu")

    def logits(self, faces: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """The model's logits for uint8 faces (N,1,H,W), on the CPU."""
        return predict_logits(self.model, faces, self.input, self.device, batch_size, channels_last=True)

    @torch.inference_mode()
    def probabilities(self, faces: torch.Tensor, tta: str = "none", batch_size: int = 256) -> torch.Tensor:
        """Class probabilities for uint8 faces (N,1,H,W); `tta` averages them over flips or ten crops."""
        if tta not in TTA_MODES:
            raise ValueError(f"tta must be one of {TTA_MODES}")
        if tta == "none":
            return self.logits(faces, batch_size).softmax(1)
        out = []
        for start in range(0, len(faces), batch_size):
            batch = faces[start : start + batch_size].to(self.device)
            out.append(
                torch.stack(
                    [self.model(to_model_input(v, self.input)).float().softmax(1) for v in _tta_views(batch, self.input, tta)]
                )
                .mean(0)
                .cpu()
            )
        return torch.cat(out) if out else torch.empty(0, len(self.classes))

    def predict_proba(self, faces: np.ndarray | torch.Tensor, tta: str = "none") -> np.ndarray:
        """uint8 grayscale faces (N,48,48) or (N,1,H,W) -> probabilities (N, len(classes))."""
        t = torch.as_tensor(np.asarray(faces))
        if t.dtype != torch.uint8:
            raise ValueError("faces must be uint8 grayscale images")
        if t.ndim == 2:
            t = t[None]
        if t.ndim == 3:
            t = t[:, None]
        return self.probabilities(t, tta).numpy()

    def evaluate(self, data: FerData, split: str = "test", tta: str = "none") -> Predictions:
        """Predictions on one split of a dataset with the same classes."""
        if tuple(data.classes) != self.classes:
            raise ValueError(f"{self.id} predicts {list(self.classes)}, the data has {list(data.classes)}")
        return data.predictions(self.probabilities(data.take(split)[0], tta).numpy(), split)


def _tta_views(batch: torch.Tensor, spec: InputSpec, tta: str) -> list[torch.Tensor]:
    if tta == "none":
        return [batch]
    if tta == "flip":
        return [batch, batch.flip(-1)]
    side = batch.shape[-1]
    crop = spec.size if spec.fit == "crop" and spec.size < side else int(round(side * 0.9))
    h = side - crop
    corners = [(0, 0), (0, h), (h, 0), (h, h)]
    views = [center_crop(batch, crop)] + [batch[..., top : top + crop, left : left + crop] for top, left in corners]
    return views + [v.flip(-1) for v in views]


def load_checkpoint(
    id_or_path: str | Path, root: Path | None = None, device: str | torch.device = "cpu", backend: str = "torch"
) -> FerClassifier:
    """Load a trained model by checkpoint id (from the store) or by a checkpoint directory path. `backend=
    "onnxruntime"` runs it on ONNX Runtime (CPU), exported once and parity-checked (fer_core.export)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    path = resolve_checkpoint(id_or_path, root)
    meta = read_meta(path)
    if backend == "onnxruntime":
        from .backends import onnxruntime_model  # onnx and onnxruntime load on first use

        return FerClassifier(onnxruntime_model(path, meta), meta, path, backend)
    # channels_last: oneDNN's faster convolution layout on CPUs (and tensor cores on GPUs); see bench/RESULTS.md.
    model = load_weights(path, meta).to(device).to(memory_format=torch.channels_last)
    return FerClassifier(model, meta, path)
