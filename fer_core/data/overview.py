"""What the app's Overview shows about a dataset: its summary with the measured flaws, and sample training
faces per class. Cached on disk beside the decoded faces, so that a new app process draws it without
importing torch or loading the dataset (seconds on a small CPU, and they slowed the page's first paint)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import write_atomically
from .choices import dataset_path
from .disk_cache import dataset_cache_key, default_cache_dir
from .ferplus import find_ferplus_dir
from .summary import DatasetSummary

if TYPE_CHECKING:
    from .dataset import FerData

OVERVIEW_VERSION = "1"  # bump when DatasetSummary or the sampling changes: older files are then ignored


@dataclass(frozen=True)
class DatasetOverview:
    summary: DatasetSummary
    samples: dict[str, np.ndarray]  # class -> (n, 48, 48) uint8 faces from the training split


def sample_faces(data: FerData, per_class: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """A seeded random draw of training faces per class (the same faces on every load)."""
    rng = np.random.default_rng(seed)
    train = data.indices("train").numpy()
    labels = data.labels.numpy()[train]
    out = {}
    for ci, c in enumerate(data.classes):
        pool = train[labels == ci]
        if len(pool):
            out[c] = data.images[rng.choice(pool, size=min(per_class, len(pool)), replace=False), 0].numpy()
    return out


def dataset_overview(
    path: str | Path, labels: str = "fer2013", per_class: int = 8, seed: int = 0, cache_dir: Path | None = None
) -> DatasetOverview:
    """The overview from its cache file, or computed from the dataset (and cached) when there is none."""
    path = dataset_path(path)
    fp_dir = find_ferplus_dir(path) if labels == "ferplus" else None
    key = dataset_cache_key(path, labels, fp_dir, val_fraction=0.1, seed=0)  # load_dataset's defaults, used below
    cache_file = (cache_dir or default_cache_dir()) / f"{key}.overview-{OVERVIEW_VERSION}-{per_class}-{seed}.safetensors"
    cached = _load(cache_file) if cache_file.is_file() else None
    if cached is not None:
        return cached
    from .loading import load_dataset
    from .summary import summarize

    data = load_dataset(path, labels=labels, cache_dir=cache_dir)
    overview = DatasetOverview(summarize(data), sample_faces(data, per_class, seed))
    try:
        _save(cache_file, overview)
    except OSError:
        pass  # a read-only home still shows the overview, just without the cache
    return overview


def _save(path: Path, overview: DatasetOverview) -> None:
    from safetensors.numpy import save_file

    tensors = {f"samples/{c}": np.ascontiguousarray(faces) for c, faces in overview.samples.items()}
    meta = {"summary": json.dumps(overview.summary.to_dict()), "classes": json.dumps(list(overview.samples))}
    write_atomically(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def _load(path: Path) -> DatasetOverview | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata()
            samples = {c: f.get_tensor(f"samples/{c}") for c in json.loads(meta["classes"])}
        return DatasetOverview(DatasetSummary.from_dict(json.loads(meta["summary"])), samples)
    except Exception:  # a stale or damaged cache file is recomputed, never trusted
        return None
