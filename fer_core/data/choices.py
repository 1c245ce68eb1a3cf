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
