"""A labelled dataset of the user's, read for evaluation: class folders (`happy/001.png`, any depth, the class is
the parent folder), a zip of them, or a csv of `path,label` rows (paths relative to the csv). Its class names are
matched to the canonical ones through the aliases (`sadness` -> sad, `1_anger` -> angry) and a mapping the user
can edit; faces are found and cropped in images larger than a face crop, and used whole in small ones."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..atomic import write_text_atomically
from ..choices import DEFAULT_DETECTOR
from ..data.choices import DataError
from ..data.classes import FERPLUS_CLASSES, normalize_class_name
from ..data.sources import IMAGE_SUFFIXES, is_ignored, tree_files
from ..faces import SMALL_IMAGE, PhotoError, find_faces, load_photo
from .records import FACES_FILE, ExternalData, read_faces, write_faces

IGNORE = "ignore"  # a mapping target: that label's faces are left out
PATH_COLUMNS = ("path", "file", "filename", "image")
LABEL_COLUMNS = ("label", "emotion", "expression", "class")
CROP_VERSION = "1"  # part of a source's cache key: bump when cropping changes
SOURCES_DIR = "sources"  # in the cache: which dataset (fingerprint) each source (files, mapping, detector) gave


@dataclass(frozen=True)
class LabelledFile:
    name: str  # the file's path inside the dataset
    label: str  # the dataset's own class name (folder name or csv label)


def _relative_parts(name: str) -> tuple[str, ...] | None:
    parts = PurePosixPath(name).parts
    if any(is_ignored(p) for p in parts):
        return None
    if PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
        return None
    return parts


def _from_tree(names: Iterable[str], where: str) -> list[LabelledFile]:
    files = []
    for name in sorted(names):
        parts = _relative_parts(name)
        if parts is None:
            continue
        if len(parts) < 2:
            raise DataError(f"{where}/{name}: images must sit in a folder named after their class (happy/{parts[-1]})")
        files.append(LabelledFile(name, parts[-2]))
    return files


def _from_csv(path: Path) -> list[LabelledFile]:
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable csv ({exc})") from exc
    header = {h.strip().lower(): h for h in (rows[0].keys() if rows else [])}
    path_col = next((header[c] for c in PATH_COLUMNS if c in header), None)
    label_col = next((header[c] for c in LABEL_COLUMNS if c in header), None)
    if path_col is None or label_col is None:
        raise DataError(f"{path}: needs a column of image paths ({', '.join(PATH_COLUMNS)}) and one of labels")
    return [LabelledFile(r[path_col].strip(), r[label_col].strip()) for r in rows if r[path_col] and r[label_col]]


def list_labelled(path: Path) -> list[LabelledFile]:
    """The dataset's images and their own labels, without decoding anything."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir() or path.suffix.lower() == ".zip":
        files = _from_tree(tree_files(path), str(path))
    elif path.suffix.lower() == ".csv":
        files = _from_csv(path)
    else:
        raise DataError(f"{path}: expected a folder of class folders, a zip of them, or a csv of path,label")
    if not files:
        raise DataError(f"{path}: no images found ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def default_mapping(labels: Iterable[str]) -> dict[str, str]:
    """Each of the dataset's labels -> the canonical class its name means (aliases), else IGNORE."""
    return {label: normalize_class_name(label) or IGNORE for label in sorted(set(labels))}


def parse_mapping(text: str) -> dict[str, str]:
    """`sadness=sad,contempt=ignore` (the CLI's --map) -> a mapping; targets must be classes or IGNORE."""
    mapping = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        label, sep, target = pair.partition("=")
        if not sep or target.strip() not in (*FERPLUS_CLASSES, IGNORE):
            raise DataError(f"--map: {pair!r} must be LABEL=CLASS with CLASS one of {', '.join(FERPLUS_CLASSES)} or {IGNORE}")
        mapping[label.strip()] = target.strip()
    return mapping


def _reader(path: Path) -> tuple[Callable[[str], bytes], Callable[[], None]]:
    """A function reading one listed file's bytes, and one closing what it opened."""
    if path.suffix.lower() == ".zip":
        zf = zipfile.ZipFile(path)
        return zf.read, zf.close
    root = (path.parent if path.is_file() else path).resolve()

    def read(name: str) -> bytes:
        file = (root / name).resolve()
        if not file.is_relative_to(root):  # a csv row may not point outside its folder
            raise PhotoError(f"{name} points outside {root}")
        return file.read_bytes()

    return read, lambda: None


def _source_key(files: list[LabelledFile], read: Callable[[str], bytes], used: dict[str, str], detector: str) -> str:
    """Every used file's name, label and content hash, the mapping and the detector: the cache's key for a source,
    known before any face is decoded (detection is the slow part)."""
    digest = hashlib.sha256(json.dumps([CROP_VERSION, detector, sorted(used.items())]).encode())
    for file in files:
        if used[file.label] != IGNORE:
            try:
                content = hashlib.sha256(read(file.name)).hexdigest()
            except (PhotoError, OSError, KeyError) as exc:
                content = f"unreadable: {exc}"
            digest.update(f"{file.name}|{file.label}|{content}\n".encode())
    return digest.hexdigest()[:16]


def load_external(
    path: Path,
    mapping: dict[str, str] | None = None,
    detector: str = DEFAULT_DETECTOR,
    cache: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ExternalData:
    """Read, match and crop a labelled dataset. `mapping` overrides the aliases label by label; a label that
    maps to no class is left out and reported, as are files that are not images. With `cache`, the cropped
    faces are kept in `cache/<fingerprint>/` and read from there next time (detection is the slow part).

    The fingerprint is the decoded faces' and their labels' (faces_fingerprint): the same faces given as a zip
    upload and as a folder on the server are one dataset, evaluated once."""
    path = Path(path)
    files = list_labelled(path)
    labels_found = {f.label for f in files}
    used = default_mapping(labels_found) | {k: v for k, v in (mapping or {}).items() if k in labels_found}
    read, close = _reader(path)
    try:
        key = _source_key(files, read, used, detector)
        if cache is not None and (known := _cached_source(cache, key)) is not None:
            return known
        name = path.stem if path.is_file() else path.name  # ckplus.zip and ckplus/ are both "ckplus"
        data = _decode(name, files, read, used, detector, on_progress)
    finally:
        close()
    if cache is None:
        return data
    faces = cache / data.fingerprint / FACES_FILE
    if faces.is_file():  # these faces came before from another source: the dataset they made stays as it was
        data = read_faces(faces)
    else:
        write_faces(faces, data)
    write_text_atomically(cache / SOURCES_DIR / key, data.fingerprint)
    return data


def _cached_source(cache: Path, key: str) -> ExternalData | None:
    """The dataset a source made before, when its faces are still cached."""
    try:
        fingerprint = (cache / SOURCES_DIR / key).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    faces = cache / fingerprint / FACES_FILE
    return read_faces(faces) if fingerprint.isalnum() and faces.is_file() else None


def faces_fingerprint(images: np.ndarray, labels: Iterable[str]) -> str:
    """The faces' pixels and labels, whatever their order, file names or container: equal means the same dataset."""
    lines = sorted(f"{hashlib.sha256(face.tobytes()).hexdigest()}|{label}" for face, label in zip(images, labels, strict=True))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _decode(
    name: str,
    files: list[LabelledFile],
    read: Callable[[str], bytes],
    used: dict[str, str],
    detector: str,
    on_progress: Callable[[int, int], None] | None,
) -> ExternalData:
    images, labels, names, unreadable = [], [], [], []
    left_out: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for done, file in enumerate(files, 1):
        if on_progress:
            on_progress(done, len(files))
        if used[file.label] == IGNORE:
            left_out[file.label] += 1
            continue
        try:
            face = find_faces(load_photo(read(file.name)), detector)[0]
        except (PhotoError, OSError, KeyError) as exc:
            unreadable.append(f"{file.name} ({exc})")
            continue
        kinds["detected" if face.detected else "whole" if face.note == SMALL_IMAGE else "no_face"] += 1
        images.append(face.face)
        labels.append(used[file.label])
        names.append(file.name)
    if not images:
        raise DataError(f"{name}: no face left to evaluate (no label matched a class, or no readable image)")
    faces = np.stack(images)
    return ExternalData(
        name=name,
        fingerprint=faces_fingerprint(faces, labels),
        images=faces,
        labels=tuple(labels),
        names=tuple(names),
        mapping=used,
        left_out=dict(left_out),
        detected=kinds["detected"],
        no_face=kinds["no_face"],
        whole=kinds["whole"],
        unreadable=tuple(unreadable),
    )
