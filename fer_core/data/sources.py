"""Readers for the layouts FER datasets ship in: Kaggle folder or zip, fer2013.csv, any ImageFolder root.

Each reader returns `RawFaces`: decoded 48x48 faces with their canonical class and, where the file
names or the csv say so, their official FER2013 usage. Splitting and relabelling happen later.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from .choices import DataError
from .classes import FER2013_CLASSES, normalize_class_name
from .dataset import IMAGE_SIZE

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm"}
# Files that operating systems drop into folders; never part of a dataset.
_IGNORED_FILES = {".ds_store", "thumbs.db", "desktop.ini"}
# Folder names that mean a split, for ImageFolder-style roots.
_SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "publictest": "val",
    "test": "test",
    "testing": "test",
    "privatetest": "test",
}
_USAGE_PREFIXES = {"Training_": "train", "PublicTest_": "val", "PrivateTest_": "test"}
_USAGE_COLUMN = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


@dataclass
class RawFaces:
    images: np.ndarray  # uint8 (N, 48, 48)
    classes: list[str]  # canonical class name per face
    names: list[str]  # a path inside the zip or folder, or "row:<n>" for fer2013.csv rows (how FER+ votes join)
    folder_split: list[str | None]  # split implied by the folder layout (train/val/test), if any
    usage: list[str | None]  # official FER2013 usage from file names or the csv, if any
    resized: int = 0


def decode_face(data: bytes, name: str) -> tuple[np.ndarray, bool]:
    """Decode one image file to a 48x48 grayscale face; returns (face, was_resized)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if buf.size else None
    if img is None:
        raise DataError(f"{name}: not a readable image")
    if img.dtype != np.uint8:  # 16-bit PNG and friends
        img = cv2.normalize(img, np.empty_like(img), 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.shape != (IMAGE_SIZE, IMAGE_SIZE):
        img = cv2.resize(img, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
        return img, True
    return img, False


def _usage_from_name(filename: str) -> str | None:
    for prefix, usage in _USAGE_PREFIXES.items():
        if filename.startswith(prefix):
            return usage
    return None


def is_ignored(part: str) -> bool:
    """A path part that is no one's data: hidden files, macOS's zip leftovers, Thumbs.db and the like."""
    return part.startswith(".") or part.startswith("__MACOSX") or part.lower() in _IGNORED_FILES


def tree_files(path: Path) -> list[str]:
    """Every file inside a folder or a zip, as posix paths relative to it (what class-folder layouts are read from)."""
    if path.is_dir():
        return [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
    try:
        with zipfile.ZipFile(path) as zf:
            return [i.filename for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip file ({exc})") from exc


def _parse_tree(relpaths: list[str], where: str) -> list[tuple[str, str, str | None]]:
    """Interpret relative paths as [prefix/][split/]class/file; returns (path, class, split) per image.

    The class folder is the parent of each file; a split folder, when present, is its parent.
    Unknown class folders and non-image files are errors that name the path.
    """
    items: list[tuple[str, str, str | None]] = []
    for rel in sorted(relpaths):
        parts = PurePosixPath(rel).parts
        if any(is_ignored(p) for p in parts):
            continue
        if len(parts) < 2:
            raise DataError(f"{where}/{rel}: files must sit in a class folder (e.g. train/happy/{parts[-1]})")
        if PurePosixPath(rel).suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{where}/{rel}: not an image file (expected one of {sorted(IMAGE_SUFFIXES)})")
        cls = normalize_class_name(parts[-2])
        if cls is None:
            raise DataError(
                f"{where}/{'/'.join(parts[:-1])}: unknown class folder '{parts[-2]}' "
                f"(expected names like {', '.join(FER2013_CLASSES)}, contempt)"
            )
        split = _SPLIT_FOLDERS.get(parts[-3].lower()) if len(parts) >= 3 else None
        items.append((rel, cls, split))
    if not items:
        raise DataError(f"{where}: no images found in class folders")
    _check_splits_share_classes(items, where)
    return items


def _check_splits_share_classes(items: list[tuple[str, str, str | None]], where: str) -> None:
    """With split folders, a class missing from one split makes its metrics (or its training) meaningless."""
    by_split: dict[str, set[str]] = {}
    for _, cls, split in items:
        if split is not None:
            by_split.setdefault(split, set()).add(cls)
    every = set().union(*by_split.values()) if by_split else set()
    for split, classes in sorted(by_split.items()):
        if classes != every:
            missing = ", ".join(sorted(every - classes))
            raise DataError(
                f"{where}: the {split} split has no folder (or no images) for {missing}, which other "
                "splits have; every split needs the same class folders"
            )


def _check_no_empty_class_dirs(root: Path) -> None:
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() in _SPLIT_FOLDERS):
        if not any(f.is_file() and not is_ignored(f.name) for f in d.rglob("*")):
            raise DataError(f"{d}: split folder has no images")
    for d in sorted(p for p in root.rglob("*") if p.is_dir() and not is_ignored(p.name)):
        if normalize_class_name(d.name) is None:
            continue
        if not any(f.is_file() and not is_ignored(f.name) for f in d.iterdir()):
            raise DataError(f"{d}: class folder is empty")


def _decode_items(items: list[tuple[str, str, str | None]], read, where: str) -> RawFaces:
    n = len(items)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    resized = 0
    for i, (rel, _, _) in enumerate(items):
        images[i], was_resized = decode_face(read(rel), f"{where}/{rel}")
        resized += was_resized
    return RawFaces(
        images=images,
        classes=[cls for _, cls, _ in items],
        names=[rel for rel, _, _ in items],
        folder_split=[split for _, _, split in items],
        usage=[_usage_from_name(PurePosixPath(rel).name) for rel, _, _ in items],
        resized=resized,
    )


def read_image_zip(path: Path) -> RawFaces:
    """A Kaggle-style zip (train/<class>/*, test/<class>/*) or any ImageFolder tree inside a zip."""
    items = _parse_tree(tree_files(path), str(path))
    with zipfile.ZipFile(path) as zf:
        return _decode_items(items, zf.read, str(path))


def read_image_folder(root: Path) -> RawFaces:
    """A Kaggle-style folder or any ImageFolder root, with or without split folders."""
    _check_no_empty_class_dirs(root)
    items = _parse_tree(tree_files(root), str(root))
    return _decode_items(items, lambda rel: (root / rel).read_bytes(), str(root))


def read_fer2013_csv(path: Path) -> RawFaces:
    """The original Kaggle fer2013.csv: columns emotion, pixels (2304 space-separated values), Usage."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read csv ({exc})") from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = {"emotion", "pixels"} - set(reader.fieldnames or [])
    if missing:
        raise DataError(f"{path}: not a fer2013.csv, missing column(s) {sorted(missing)}")
    images, classes, usage, rows = [], [], [], []
    for row_no, row in enumerate(reader):
        line = row_no + 2  # header is line 1
        try:
            emotion = int(row["emotion"])
            pixels = np.array(row["pixels"].split(), dtype=np.int64)
        except (ValueError, AttributeError) as exc:
            raise DataError(f"{path}, line {line}: malformed row ({exc})") from exc
        if not 0 <= emotion < len(FER2013_CLASSES):
            raise DataError(f"{path}, line {line}: emotion {emotion} is not in 0..6")
        if pixels.size != IMAGE_SIZE * IMAGE_SIZE or pixels.min() < 0 or pixels.max() > 255:
            raise DataError(f"{path}, line {line}: pixels must be 2304 values in 0..255 (got {pixels.size})")
        images.append(pixels.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE))
        classes.append(FER2013_CLASSES[emotion])
        usage.append(_USAGE_COLUMN.get((row.get("Usage") or "").strip()))
        rows.append(row_no)
    if not images:
        raise DataError(f"{path}: csv has no rows")
    return RawFaces(
        images=np.stack(images),
        classes=classes,
        names=[f"row:{r}" for r in rows],
        folder_split=[None] * len(rows),
        usage=usage,
    )
