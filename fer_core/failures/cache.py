"""Where derived failure results live: in the cache folder ($FER_CACHE_DIR, default ~/.cache/fer_core, beside the
decoded datasets), `failures/<kind>/<checkpoint id>-<weights digest>.safetensors`. Not in the checkpoint store:
they can always be computed again, a checkpoint's whole suite is several MB, and the store (the repository's
checkpoints/) keeps to its size budget. A file is valid only for the key it was written with (the weights' digest,
the data's fingerprint, the code's version); a file of another key, or a damaged one, reads as missing, so the
caller computes it again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from ..atomic import write_atomically
from ..data.disk_cache import default_cache_dir, file_digest
from ..store import WEIGHTS_FILE

FAILURES_DIR = "failures"


def weights_digest(checkpoint_path: Path) -> str:
    """sha256 of a checkpoint's weights file (16 hex digits, as the ONNX export cache keys it): new weights under an
    old id still miss the cache."""
    return file_digest(checkpoint_path / WEIGHTS_FILE)[:16]


def results_folder(kind: str) -> Path:
    return default_cache_dir() / FAILURES_DIR / kind


def result_file(kind: str, checkpoint_id: str, weights: str) -> Path:
    """The file of one checkpoint's result of this kind, for the weights of that digest."""
    return results_folder(kind) / f"{checkpoint_id}-{weights}.safetensors"


def write_result(file: Path, tensors: dict[str, np.ndarray], key: dict[str, str], facts: dict[str, str]) -> None:
    """Atomically; a read-only cache folder is not an error (the result is computed again next time)."""
    from safetensors.numpy import save_file

    arrays = {name: np.ascontiguousarray(a) for name, a in tensors.items()}
    try:
        write_atomically(file, lambda tmp: save_file(arrays, tmp, metadata={**facts, **key}))
    except OSError:
        pass


def read_result(file: Path, key: dict[str, str]) -> tuple[dict[str, np.ndarray], dict[str, str]] | None:
    """The arrays and the facts written with them, when the file was written with exactly `key`; else None."""
    from safetensors.numpy import load_file

    if not file.is_file():
        return None
    try:
        with safe_open(str(file), framework="numpy") as f:
            facts = dict(f.metadata() or {})
        if any(facts.get(k) != v for k, v in key.items()):
            return None
        return load_file(str(file)), facts
    except (OSError, SafetensorError, ValueError):
        return None
