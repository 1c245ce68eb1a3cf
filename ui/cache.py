"""Caches that refresh themselves: every cached reader of the store keys its cache on a signature of the files it
reads, taken at each call, so a new, rewritten, hidden or deleted checkpoint refreshes every page without a
restart, while switching pages never reads a model from disk again."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from fer_core.store import HIDDEN_FILE, default_root

P = ParamSpec("P")
R = TypeVar("R")
Cache = Callable[[Callable[..., Any]], Callable[..., Any]]


class Refreshed(Generic[P, R]):
    """A cached reader called without its signature: `reader(*args)` takes the signature now and reads afresh
    when it changed; `reader.at(signature, *args)` reads under a signature already taken, so that readers
    built on each other see one state of the store."""

    def __init__(self, cached: Callable[Concatenate[tuple, P], R], signature: Callable[P, tuple]) -> None:
        self.at = cached
        self.signature = signature

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.at(self.signature(*args, **kwargs), *args, **kwargs)


def refreshed_by(
    signature: Callable[..., tuple], cache: Cache
) -> Callable[[Callable[Concatenate[tuple, P], R]], Refreshed[P, R]]:
    """Decorate `reader(signature, *args)` with `cache` (st.cache_data, st.cache_resource, functools.lru_cache),
    `signature(*args)` computing its first argument at each call."""

    def wrap(reader: Callable[Concatenate[tuple, P], R]) -> Refreshed[P, R]:
        return Refreshed(cache(reader), signature)

    return wrap


def store_root() -> Path:
    return default_root()


def mtime_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def store_signature(*_: object) -> tuple:
    """Cheap fingerprint of the store: changes when a checkpoint is added, removed, rewritten, hidden or shown.

    One scandir and one stat per checkpoint, with no pathlib: it is called ~170 times in a rerun of Predict
    (every picker's format_func through `name`), where the pathlib version cost ~55 ms and this one ~20 ms.
    """
    root = str(store_root())
    try:
        with os.scandir(root) as entries:
            names = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
    except OSError:
        return ()
    sig = [(n, mtime) for n in names if (mtime := mtime_ns(os.path.join(root, n, "meta.json"))) is not None]
    if (mtime := mtime_ns(os.path.join(root, HIDDEN_FILE))) is not None:
        sig.append((HIDDEN_FILE, mtime))
    return tuple(sig)


def checkpoint_signature(checkpoint_id: str, *_: object) -> tuple:
    """One checkpoint's store folder and meta.json time (every save rewrites meta.json last)."""
    root = str(store_root())
    return root, checkpoint_id, mtime_ns(os.path.join(root, checkpoint_id, "meta.json")) or 0


def own_data_signature(*_: object) -> tuple:
    """The cached faces and results of the user's datasets in this store: one file each, written by a rename."""
    from fer_core.external import external_root

    folder = external_root(store_root())
    if not folder.is_dir():
        return ()
    return tuple((f.relative_to(folder).as_posix(), f.stat().st_mtime_ns) for f in sorted(folder.glob("*/*.safetensors")))
