"""`load_dataset`: any supported layout -> FerData, with the official split and a content-keyed disk cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..atomic import write_atomically
from .choices import LABEL_SOURCES, DataError, dataset_path
from .classes import FERPLUS_CLASSES, canonical_order
from .dataset import SPLITS, FerData
from .disk_cache import dataset_cache_key, default_cache_dir
from .ferplus import VOTES_FILE, find_ferplus_dir, read_votes, rows_for_names
from .sources import RawFaces, read_fer2013_csv, read_image_folder, read_image_zip


def _read_raw(path: Path) -> RawFaces:
    if path.is_dir():
        csv_inside = path / "fer2013.csv"
        return read_fer2013_csv(csv_inside) if csv_inside.is_file() else read_image_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return read_image_zip(path)
    if suffix == ".csv":
        return read_fer2013_csv(path)
    raise DataError(f"{path}: unsupported dataset file (use a Kaggle .zip, a folder, or fer2013.csv)")


def _assign_splits(raw: RawFaces, labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, str]:
    """Official FER2013 usage when every face carries it; else split folders; else stratified, seeded."""
    from sklearn.model_selection import train_test_split  # slow to import: only for datasets that need it

    n = len(raw.names)
    if all(u is not None for u in raw.usage):
        split = np.array([SPLITS.index(u) for u in raw.usage], dtype=np.uint8)
        return split, "official FER2013 usage: Training -> train, PublicTest -> val, PrivateTest -> test"
    folders = raw.folder_split
    split = np.full(n, SPLITS.index("train"), dtype=np.uint8)
    notes = []
    has = {s for s in folders if s is not None}
    if has:
        for i, s in enumerate(folders):
            if s is not None:
                split[i] = SPLITS.index(s)
        notes.append(f"split folders {sorted(has)}")
        if "test" not in has and "val" in has:
            split[split == SPLITS.index("val")] = SPLITS.index("test")
            notes.append("the validation folder is used as the test split")
            has = {"train", "test"}
    missing = [s for s in ("test", "val") if s not in has]
    rng_seed = seed
    for target in missing:
        pool = np.flatnonzero(split == SPLITS.index("train"))
        fraction = val_fraction if target == "val" else 0.15
        counts = np.bincount(labels[pool])
        present = counts[counts > 0]
        can_stratify = present.min() >= 2 and int(np.ceil(fraction * len(pool))) >= len(present)
        stratify = labels[pool] if can_stratify else None  # too few faces per class to stratify
        _, chosen = train_test_split(pool, test_size=fraction, random_state=rng_seed, stratify=stratify)
        split[chosen] = SPLITS.index(target)
        notes.append(f"{target} = stratified {fraction:.0%} of train (seed {seed})")
        rng_seed += 1
    for i, s in enumerate(SPLITS):
        if not (split == i).any():
            raise DataError(f"the {s} split is empty after splitting ({'; '.join(notes)})")
    return split, "; ".join(notes)


def _build(raw: RawFaces, labels_from: str, ferplus_dir: Path | None, val_fraction: float, seed: int, source: str) -> FerData:
    soft = None
    if labels_from == "ferplus":
        if ferplus_dir is None:
            raise DataError(f"FER+ labels need {VOTES_FILE}; none found next to {source} (pass ferplus_dir)")
        votes = read_votes(ferplus_dir / VOTES_FILE)
        rows = rows_for_names(raw.names, ferplus_dir)
        if rows.max() >= len(votes.votes):
            raise DataError(f"{ferplus_dir / VOTES_FILE}: has {len(votes.votes)} rows, fewer than the data needs")
        majority = np.where(rows >= 0, votes.majority()[np.maximum(rows, 0)], -1)
        keep = np.flatnonzero(majority >= 0)
        classes = FERPLUS_CLASSES
        labels = majority[keep]
        soft = torch.from_numpy(votes.distribution()[rows[keep]])
    else:
        keep = np.arange(len(raw.names))
        classes = canonical_order(set(raw.classes))
        labels = np.array([classes.index(c) for c in raw.classes])
    kept = RawFaces(
        images=raw.images[keep],
        classes=[raw.classes[i] for i in keep],
        names=[raw.names[i] for i in keep],
        folder_split=[raw.folder_split[i] for i in keep],
        usage=[raw.usage[i] for i in keep],
        resized=raw.resized,
    )
    split, method = _assign_splits(kept, labels, val_fraction, seed)
    if labels_from == "ferplus":
        method += f"; FER+ majority labels, {len(raw.names) - len(keep)} faces dropped (no majority, unknown or not a face)"
    return FerData(
        images=torch.from_numpy(np.ascontiguousarray(kept.images)).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        split=torch.from_numpy(split),
        classes=tuple(classes),
        names=tuple(kept.names),
        source=source,
        label_source=labels_from,
        split_method=method,
        soft_labels=soft,
        resized_images=raw.resized,
    )


def _save_cache(path: Path, data: FerData) -> None:
    tensors = {"images": data.images, "labels": data.labels, "split": data.split}
    if data.soft_labels is not None:
        tensors["soft_labels"] = data.soft_labels
    meta = {
        "classes": json.dumps(data.classes),
        "names": json.dumps(data.names),
        "source": data.source,
        "label_source": data.label_source,
        "split_method": data.split_method,
        "resized_images": str(data.resized_images),
        "fingerprint": data.fingerprint,
    }
    write_atomically(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def _load_cache(path: Path) -> FerData | None:
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
        tensors = load_file(str(path))
        return FerData(
            images=tensors["images"],
            labels=tensors["labels"],
            split=tensors["split"],
            classes=tuple(json.loads(meta["classes"])),
            names=tuple(json.loads(meta["names"])),
            source=meta["source"],
            label_source=meta["label_source"],
            split_method=meta["split_method"],
            soft_labels=tensors.get("soft_labels"),
            resized_images=int(meta["resized_images"]),
            fingerprint=meta["fingerprint"],
        )
    except Exception:  # a stale or damaged cache file is rebuilt, never trusted
        return None


def load_dataset(
    path: str | Path,
    labels: str = "fer2013",
    ferplus_dir: str | Path | None = None,
    classes: list[str] | tuple[str, ...] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> FerData:
    """Load FER2013 (Kaggle zip or folder, fer2013.csv) or any ImageFolder root of faces.

    The first load decodes every image; later loads of the same content come from a safetensors
    cache in `cache_dir` (default ~/.cache/fer_core, or $FER_CACHE_DIR) in well under a second.
    """
    path = dataset_path(path)
    if labels not in LABEL_SOURCES:
        raise DataError(f"labels must be one of {LABEL_SOURCES}, not {labels!r}")
    fp_dir = Path(ferplus_dir).expanduser() if ferplus_dir else (find_ferplus_dir(path) if labels == "ferplus" else None)
    key = dataset_cache_key(path, labels, fp_dir, val_fraction, seed)
    cache_file = (cache_dir or default_cache_dir()) / f"{key}.safetensors"
    data = _load_cache(cache_file) if use_cache and cache_file.is_file() else None
    if data is None:
        data = _build(_read_raw(path), labels, fp_dir, val_fraction, seed, str(path))
        if use_cache:
            try:
                _save_cache(cache_file, data)
            except OSError:
                pass  # a read-only home still loads, just without the cache
    if classes:
        data = data.with_classes(list(classes))
    return data
