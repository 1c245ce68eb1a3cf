"""FER+ relabelling (Barsoum et al., arXiv:1608.01041): 10 crowd votes per original fer2013.csv row.

Votes are joined by row *position* in fer2013.csv; Kaggle image files reach their row through
`kaggle_to_fer2013_row.csv` (see ../shared/data/README.md: the number in `Image name` is not the row).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .choices import DataError
from .classes import FERPLUS_CLASSES

VOTES_FILE = "fer2013new.csv"
MAPPING_FILE = "kaggle_to_fer2013_row.csv"
# Column order of fer2013new.csv after `Usage` and `Image name`.
_VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
# The same columns as people read them (the app's vote bars).
VOTE_LABELS = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt", "unknown", "not a face")
_COLUMN_TO_CLASS = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sad",
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "contempt": "contempt",
}


@dataclass(frozen=True)
class FerPlusVotes:
    votes: np.ndarray  # float32 (rows, 10) in _VOTE_COLUMNS order

    def majority(self) -> np.ndarray:
        """FER+ 'majority' labels as in Microsoft's reference code; -1 where the row is dropped.

        Single votes are treated as outliers and removed; a class then needs more than half of the
        remaining votes, and rows whose winner is 'unknown' or 'NF' (not a face) are dropped.
        """
        v = np.where(self.votes < 1.1, 0.0, self.votes)
        total = v.sum(axis=1)
        top = v.argmax(axis=1)
        ok = (v.max(axis=1) > 0.5 * total) & (total > 0) & (top < len(FERPLUS_CLASSES))
        labels = np.array([_to_canonical(int(t)) for t in top])
        return np.where(ok, labels, -1)

    def majority_names(self) -> tuple[str, ...]:
        """The majority's class name per row, "" where Microsoft's rule gives none."""
        return tuple(FERPLUS_CLASSES[m] if m >= 0 else "" for m in self.majority().tolist())

    def distribution(self) -> np.ndarray:
        """Soft labels: the share of votes per emotion (unknown/NF excluded), rows without any as zeros."""
        v = self.votes[:, : len(FERPLUS_CLASSES)]
        order = [_VOTE_COLUMNS.index(col) for col in _canonical_columns()]
        v = v[:, order]
        total = v.sum(axis=1, keepdims=True)
        return np.divide(v, total, out=np.zeros_like(v), where=total > 0).astype(np.float32)


def _canonical_columns() -> list[str]:
    inverse = {cls: col for col, cls in _COLUMN_TO_CLASS.items()}
    return [inverse[c] for c in FERPLUS_CLASSES]


def _to_canonical(vote_column: int) -> int:
    if vote_column >= len(FERPLUS_CLASSES):
        return -1
    return FERPLUS_CLASSES.index(_COLUMN_TO_CLASS[_VOTE_COLUMNS[vote_column]])


def read_votes(path: Path) -> FerPlusVotes:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            cols = [header.index(c) for c in _VOTE_COLUMNS]
            votes = np.array([[float(row[c] or 0) for c in cols] for row in reader], dtype=np.float32)
    except (OSError, StopIteration, ValueError, IndexError) as exc:
        raise DataError(f"{path}: not a FER+ vote file ({exc})") from exc
    return FerPlusVotes(votes)


def read_kaggle_mapping(path: Path) -> dict[str, int]:
    """kaggle_path -> fer2013.csv row index, for the files whose row is known."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return {r["kaggle_path"]: int(r["row_index"]) for r in csv.DictReader(f) if r.get("row_index")}
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a Kaggle-to-row mapping file ({exc})") from exc


def rows_for_names(names: tuple[str, ...] | list[str], ferplus_dir: Path) -> np.ndarray:
    """The fer2013.csv row of each face, -1 where unknown: `row:N` names (faces read from fer2013.csv) carry it,
    Kaggle image files reach it through MAPPING_FILE."""
    if all(name.startswith("row:") for name in names):
        return np.array([int(name[4:]) for name in names], dtype=np.int64)
    mapping_path = ferplus_dir / MAPPING_FILE
    if not mapping_path.is_file():
        raise DataError(f"{ferplus_dir}: {MAPPING_FILE} is needed to join FER+ votes to Kaggle image files")
    mapping = read_kaggle_mapping(mapping_path)
    return np.array([mapping.get(name, -1) for name in names], dtype=np.int64)


def find_ferplus_dir(data_path: Path) -> Path | None:
    """FER+ files next to the data, or in a sibling `ferplus/` folder (the ../shared/data layout)."""
    base = data_path if data_path.is_dir() else data_path.parent
    for candidate in (base, base / "ferplus", base.parent / "ferplus"):
        if (candidate / VOTES_FILE).is_file():
            return candidate
    return None
