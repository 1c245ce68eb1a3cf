"""Which backend runs a checkpoint: PyTorch, or ONNX Runtime on an export made once into the cache (parity-checked
by fer_core.export), chosen by which one this machine measured faster. Used by classifier.load_checkpoint; imports
no classifier, so loading never goes round in a circle."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from .atomic import write_text_atomically
from .data.disk_cache import default_cache_dir, file_digest
from .export import SIDECAR, ExportError, OrtModule, export_checkpoint, load_export
from .records import CheckpointMeta
from .store import WEIGHTS_FILE, load_weights


def _cached_export(path: Path, meta: CheckpointMeta, cache: Path | None) -> Path:
    """Where a checkpoint's ONNX Runtime export lives in the cache, keyed by its weights (a retrained id misses)."""
    return (cache or default_cache_dir()) / "onnx" / f"{meta.id}-{file_digest(path / WEIGHTS_FILE)[:16]}"


def onnxruntime_model(path: Path, meta: CheckpointMeta, cache: Path | None = None) -> OrtModule:
    """The checkpoint's network on ONNX Runtime: exported once (parity-checked) into the cache."""
    return _exported(path, meta, _cached_export(path, meta, cache))


def _exported(path: Path, meta: CheckpointMeta, folder: Path) -> OrtModule:
    if not (folder / SIDECAR).is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            export_checkpoint(path, folder)
        except (ExportError, OSError):
            if not (folder / SIDECAR).is_file():  # not another process that exported it first
                raise
    module, sidecar = load_export(folder)
    if sidecar.classes != meta.classes:
        raise ExportError(f"{folder}: exported with classes {list(sidecar.classes)}, not the checkpoint's")
    return module


@dataclass(frozen=True)
class BackendSpeed:
    """Batch-1 latency of the network on each backend, measured on the same machine one after the other."""

    torch_ms: float
    onnxruntime_ms: float
    measured_on: str

    @property
    def faster(self) -> str:
        return "onnxruntime" if self.onnxruntime_ms < self.torch_ms else "torch"


SPEED = "speed.json"


def measure_backends(path: Path, meta: CheckpointMeta, cache: Path | None = None) -> BackendSpeed:
    """Export the checkpoint for ONNX Runtime if needed, time both backends here, and keep the figures with the
    export: what `faster_backend` decides by."""
    from .efficiency import measure_speed

    folder = _cached_export(path, meta, cache)  # hashes the weights: once
    ort = _exported(path, meta, folder)
    model = load_weights(path, meta).eval()
    speed = BackendSpeed(
        torch_ms=measure_speed(model, meta.input, repeats=50)[0],
        onnxruntime_ms=measure_speed(ort, meta.input, repeats=50)[0],
        measured_on=platform.platform(),
    )
    write_text_atomically(folder / SPEED, json.dumps(asdict(speed)))
    return speed


def speed_file(path: Path, meta: CheckpointMeta, cache: Path | None = None) -> Path:
    """Where measure_backends keeps a checkpoint's figures (beside its cached export)."""
    return _cached_export(path, meta, cache) / SPEED


def faster_backend(path: Path, meta: CheckpointMeta, cache: Path | None = None) -> str:
    """The backend this machine measured faster for this checkpoint (measure_backends); "torch" when unmeasured."""
    file = speed_file(path, meta, cache)
    try:
        speed = BackendSpeed(**json.loads(file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return "torch"
    return speed.faster if speed.measured_on == platform.platform() else "torch"
