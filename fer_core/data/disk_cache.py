"""The disk cache of decoded datasets: where it is, the key of an entry (a hash of the source's content and of
every option that changes the result). Torch-free, so the app can find a cached dataset
overview before torch is imported."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .ferplus import MAPPING_FILE, VOTES_FILE

CACHE_VERSION = "1"


def default_cache_dir() -> Path:
    return Path(os.environ.get("FER_CACHE_DIR", Path.home() / ".cache" / "fer_core"))


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def source_key(path: Path) -> str:
    """Content hash for a file; for a folder, a hash of every file's path, size and mtime (cheap, and
    any edit to the folder changes it)."""
    if path.is_file():
        return file_digest(path)
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(path).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def dataset_cache_key(path: Path, labels: str, ferplus_dir: Path | None, val_fraction: float, seed: int) -> str:
    parts = [
        CACHE_VERSION,
        path.suffix.lower() if path.is_file() else "dir",
        source_key(path),
        labels,
        str(val_fraction),
        str(seed),
    ]
    if labels == "ferplus" and ferplus_dir is not None:
        parts += [file_digest(p) for p in (ferplus_dir / VOTES_FILE, ferplus_dir / MAPPING_FILE) if p.is_file()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
