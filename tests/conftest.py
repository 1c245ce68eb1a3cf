"""Fixtures generated on the fly: tiny datasets in every supported layout, and real photos from matplotlib.

Nothing is downloaded; tests that use ../shared/data skip when it is absent (skipif on FER2013_ZIP).
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_core.data.classes import FER2013_CLASSES
from fer_core.repository import REPO

SHARED_DATA = REPO.parent / "shared" / "data"
FER2013_ZIP = SHARED_DATA / "fer2013" / "fer2013.zip"
FERPLUS_DIR = SHARED_DATA / "ferplus"

# Per class: Training, PublicTest, PrivateTest images. 7 x 5 = 35 faces.
PER_CLASS = {"Training": 3, "PublicTest": 1, "PrivateTest": 1}


def synthetic_face(class_index: int, variant: int) -> np.ndarray:
    """A 48x48 'face' whose pattern depends on the class, so tiny models can learn something."""
    rng = np.random.default_rng(class_index * 100 + variant)
    img = np.full((48, 48), 40 + 25 * class_index, np.float64)
    cv2.circle(img, (24, 24), 8 + 2 * class_index, 255 - 20 * class_index, -1)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(img: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def kaggle_entries() -> list[tuple[str, np.ndarray, int, int]]:
    """(path inside the Kaggle layout, image, class index, fer2013.csv row)."""
    entries, row = [], 0
    for usage, n in PER_CLASS.items():
        folder = "train" if usage == "Training" else "test"
        for ci, cls in enumerate(FER2013_CLASSES):
            for _ in range(n):
                img = synthetic_face(ci, row)
                entries.append((f"{folder}/{cls}/{usage}_{1000 + row}.jpg", img, ci, row))
                row += 1
    return entries


@pytest.fixture(scope="session")
def fixtures_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fixtures")


@pytest.fixture(scope="session")
def kaggle_folder(fixtures_dir) -> Path:
    root = fixtures_dir / "kaggle"
    for rel, img, _, _ in kaggle_entries():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(encode(img))
    return root


@pytest.fixture(scope="session")
def kaggle_zip(fixtures_dir) -> Path:
    path = fixtures_dir / "fer2013_tiny.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for rel, img, _, _ in kaggle_entries():
            zf.writestr(rel, encode(img))
    return path


@pytest.fixture(scope="session")
def fer2013_csv(fixtures_dir) -> Path:
    path = fixtures_dir / "csvdata" / "fer2013.csv"
    path.parent.mkdir()
    usage_of = {"train": "Training"}
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for rel, img, ci, _ in kaggle_entries():
            usage = usage_of.get(rel.split("/")[0]) or Path(rel).name.split("_")[0]
            w.writerow([ci, " ".join(map(str, img.flatten())), usage])
    return path


def ferplus_votes(ci: int, row: int) -> list[int]:
    """10 votes per row in fer2013new.csv column order; every 7th row is 'not a face' (dropped)."""
    order = ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt", "unknown", "NF"]
    votes = [0] * 10
    if row % 7 == 6:
        votes[9] = 10
        return votes
    votes[order.index(FER2013_CLASSES[ci])] = 8
    votes[order.index("contempt")] += 2
    return votes


@pytest.fixture(scope="session")
def ferplus_dir(fixtures_dir) -> Path:
    """fer2013new.csv + kaggle_to_fer2013_row.csv for the fixture data, in the ../shared layout."""
    d = fixtures_dir / "ferplus"
    d.mkdir()
    with (d / "fer2013new.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "Usage",
                "Image name",
                "neutral",
                "happiness",
                "surprise",
                "sadness",
                "anger",
                "disgust",
                "fear",
                "contempt",
                "unknown",
                "NF",
            ]
        )
        for _, _, ci, row in kaggle_entries():
            w.writerow(["x", f"fer{row:07d}.png", *ferplus_votes(ci, row)])
    with (d / "kaggle_to_fer2013_row.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kaggle_path", "usage", "row_index", "match_distance", "second_best_distance", "status", "candidate_rows"])
        for rel, _, _, row in kaggle_entries():
            w.writerow([rel, "", row, 0, 9, "unique", ""])
    return d


@pytest.fixture(scope="session")
def image_folder_6class(fixtures_dir) -> Path:
    """The other literature layout: images/train + images/validation, six classes, capitalised aliases."""
    root = fixtures_dir / "images"
    names = {"Angry": 0, "Fearful": 2, "Happiness": 3, "Sadness": 4, "Surprised": 5, "Neutral": 6}
    for split, n in (("train", 4), ("validation", 2)):
        for folder, ci in names.items():
            (root / split / folder).mkdir(parents=True)
            for k in range(n):
                (root / split / folder / f"{k}.png").write_bytes(encode(synthetic_face(ci, k + 50), ".png"))
    return root


@pytest.fixture(scope="session")
def grace_hopper() -> Path:
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="session")
def two_faces_and_logo(fixtures_dir, grace_hopper) -> Path:
    """Two real faces side by side with matplotlib's logo below them: the case where Haar finds a false face."""
    import matplotlib.cbook

    face = cv2.imread(str(grace_hopper))
    logo = cv2.imread(str(matplotlib.cbook.get_sample_data("logo2.png", asfileobj=False)))
    top = np.hstack([face, face])
    logo = cv2.resize(logo, (top.shape[1], int(logo.shape[0] * top.shape[1] / logo.shape[1])))
    path = fixtures_dir / "two_faces_and_logo.jpg"
    cv2.imwrite(str(path), np.vstack([top, logo]))
    return path


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory, kaggle_zip) -> Path:
    """A checkpoint store with two quickly trained models (2 epochs on the fixture zip)."""
    from fer_core.training import make_config, train_and_save

    root = tmp_path_factory.mktemp("checkpoints")
    for model in ("keras_cnn", "xception_fer"):
        cfg = make_config(model, "quick", data=str(kaggle_zip), epochs=2, batch_size=8, device="cpu")
        train_and_save(cfg, root=root, measure_efficiency=False)
    return root


def image_bytes(img: np.ndarray, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="session", autouse=True)
def _isolated_state(tmp_path_factory):
    """Keep the dataset cache and training runs out of the user's home and the repository."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FER_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("FER_RUNS", str(tmp_path_factory.mktemp("runs")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def own_dataset(fixtures_dir, grace_hopper) -> Path:
    """A CK+-style folder of the user's: six classes, contempt and no neutral (nor fear), folder names that are
    aliases (anger, happiness, sadness), mixed sizes (48 px crops, 96 px crops used whole, full-size photos with a
    face), a label no alias matches, a broken image and a stray text file."""
    root = fixtures_dir / "ckplus"
    folders = {"anger": 0, "contempt": 7, "disgust": 1, "happiness": 3, "sadness": 4, "surprise": 5, "posed_other": 6}
    for folder, ci in folders.items():
        (root / folder).mkdir(parents=True)
        for k in range(3):
            face = synthetic_face(ci % 7, k + 200 + 10 * ci)
            size = 96 if k == 2 else 48
            cv2.imwrite(str(root / folder / f"S{ci:03d}_{k}.png"), cv2.resize(face, (size, size)))
    photo = cv2.imread(str(grace_hopper))
    for k in range(2):
        cv2.imwrite(str(root / "happiness" / f"photo_{k}.jpg"), photo)
    (root / "surprise" / "broken.png").write_bytes(b"not a png")
    (root / "anger" / "notes.txt").write_text("session notes")
    return root
