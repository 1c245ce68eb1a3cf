"""What a user chooses before any data loads: the dataset (and where FER2013 usually is), the label source,
the augmentation preset; and the error raised for data that cannot be used.

Torch-free, so the app's sidebar and Overview can offer these choices before torch is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..repository import REPO

LABEL_SOURCES = ("fer2013", "ferplus")
AUGMENT_PRESETS = ("none", "light", "strong", "robust", "robust_mix")


class DataError(ValueError):
    """A dataset on disk cannot be used; the message names the offending file or folder."""


def dataset_path(path: str | Path) -> Path:
    """A dataset's path as given, checked before anything is read or started in the background: empty, missing,
    or a file that is neither a .zip nor a .csv is a DataError that says so."""
    if not str(path).strip():
        raise DataError("give the path of FER2013 (Kaggle .zip or folder, or fer2013.csv)")
    checked = Path(str(path).strip()).expanduser()
    if not checked.exists():
        raise DataError(f"{checked}: no such file or folder")
    if checked.is_file() and checked.suffix.lower() not in (".zip", ".csv"):
        raise DataError(f"{checked.name}: use a Kaggle .zip, a fer2013.csv or a folder")
    return checked


def find_default_dataset() -> Path | None:
    """Where FER2013 usually is: $FER_DATA, the ../shared/data layout beside the repo, or ./data."""
    candidates = [os.environ.get("FER_DATA")] + [
        str(p)
        for p in (
            REPO.parent / "shared" / "data" / "fer2013" / "fer2013.zip",
            REPO / "data" / "fer2013.zip",
            REPO / "data" / "fer2013.csv",
            REPO / "data" / "fer2013",
        )
    ]
    for c in candidates:
        if c and Path(c).expanduser().exists():
            return Path(c).expanduser()
    return None
