"""The package's one way to write a file: to a temporary file beside it, flushed to disk, then renamed over it.

Readers (the app, a second process, the next run) see the old file or the new one, never half of one, and a
crash or a full disk leaves the old file in place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp)` with a temporary path beside `path`, then rename it to `path`. A folder that cannot take
    the file is an OSError that names `path` (not the temporary file the user never asked for)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write there ({exc.strerror})", str(path)) from None
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomically(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    write_atomically(path, write)
