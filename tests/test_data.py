from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import zipfile

import kornia.augmentation as K
import numpy as np
import pytest
import torch

from fer_core.data import (
    FER2013_CLASSES,
    FERPLUS_CLASSES,
    DataError,
    DatasetSummary,
    augment_batch,
    build_augmentation,
    dataset_overview,
    load_dataset,
    normalize_class_name,
    summarize,
    to_model_input,
)
from fer_core.data.augment import AugMix, RandomLowResolution, RandomNoiseLevel
from fer_core.data.choices import AUGMENT_PRESETS
from fer_core.failures.corruptions import HELD_OUT
from fer_core.input_spec import InputSpec
from fer_core.store import list_checkpoints

from .conftest import FER2013_ZIP, FERPLUS_DIR, REPO, encode, kaggle_entries, synthetic_face


def test_kaggle_zip_official_split(kaggle_zip):
    data = load_dataset(kaggle_zip)
    assert data.classes == FER2013_CLASSES
    assert data.split_sizes() == {"train": 21, "val": 7, "test": 7}
    assert data.images.dtype == torch.uint8 and data.images.shape == (35, 1, 48, 48)
    assert data.split_method.startswith("official")
    # the pixels are the fixture's pixels (JPEG round trip aside)
    rel, img, ci, _ = kaggle_entries()[0]
    i = data.names.index(rel)
    assert int(data.labels[i]) == ci
    assert np.abs(data.images[i, 0].numpy().astype(int) - img.astype(int)).mean() < 4
    test = data.indices("test")
    by_class = {c: data.indices("test", c) for c in data.classes}
    assert sorted(torch.cat(list(by_class.values())).tolist()) == test.tolist()
    assert all((data.labels[idx] == data.classes.index(c)).all() for c, idx in by_class.items())


def test_folder_zip_and_csv_agree(kaggle_zip, kaggle_folder, fer2013_csv):
    from_zip = load_dataset(kaggle_zip)
    from_folder = load_dataset(kaggle_folder)
    from_csv = load_dataset(fer2013_csv)
    assert from_zip.fingerprint == from_folder.fingerprint
    assert from_csv.split_sizes() == from_zip.split_sizes()
    assert sorted(from_csv.labels.tolist()) == sorted(from_zip.labels.tolist())
    # a folder that holds fer2013.csv loads the csv
    assert load_dataset(fer2013_csv.parent).fingerprint == from_csv.fingerprint


def test_image_folder_six_classes_with_aliases(image_folder_6class):
    data = load_dataset(image_folder_6class, seed=3)
    assert data.classes == ("angry", "fear", "happy", "sad", "surprise", "neutral")
    sizes = data.split_sizes()
    assert sizes["test"] == 12  # the validation folder becomes the held-out test split
    assert sizes["val"] > 0 and sizes["train"] + sizes["val"] == 24
    assert "stratified" in data.split_method and "seed 3" in data.split_method
    # the seeded split is reproducible, and another seed gives another split
    assert load_dataset(image_folder_6class, seed=3).fingerprint == data.fingerprint
    assert load_dataset(image_folder_6class, seed=4, use_cache=False).fingerprint != data.fingerprint


def test_single_folder_gets_train_val_test(tmp_path):
    for ci, cls in enumerate(("Anger", "Happy", "Sadness")):
        (tmp_path / "ck" / cls).mkdir(parents=True)
        for k in range(10):
            (tmp_path / "ck" / cls / f"{k}.png").write_bytes(encode(synthetic_face(ci, k), ".png"))
    data = load_dataset(tmp_path / "ck")
    assert all(v > 0 for v in data.split_sizes().values())
    assert sum(data.split_sizes().values()) == 30


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Angry", "angry"),
        ("anger", "angry"),
        ("Disgusted", "disgust"),
        ("Surprised", "surprise"),
        ("Sadness", "sad"),
        ("happiness", "happy"),
        ("3_fear", "fear"),
        ("contempt", "contempt"),
        ("banana", None),
    ],
)
def test_class_name_normalisation(name, expected):
    assert normalize_class_name(name) == expected


def test_unknown_class_folder_is_named(tmp_path):
    (tmp_path / "d" / "train" / "bored").mkdir(parents=True)
    (tmp_path / "d" / "train" / "bored" / "a.png").write_bytes(encode(synthetic_face(0, 0), ".png"))
    with pytest.raises(DataError, match="bored"):
        load_dataset(tmp_path / "d")


def test_empty_class_folder_is_named(tmp_path):
    (tmp_path / "d" / "train" / "happy").mkdir(parents=True)
    (tmp_path / "d" / "train" / "happy" / "a.png").write_bytes(encode(synthetic_face(0, 0), ".png"))
    (tmp_path / "d" / "train" / "sad").mkdir(parents=True)
    with pytest.raises(DataError, match="sad.*empty"):
        load_dataset(tmp_path / "d")


def test_class_missing_from_one_split_is_named(tmp_path):
    for split, classes in {"train": ("happy", "sad", "fear"), "test": ("happy", "sad")}.items():
        for cls in classes:
            (tmp_path / "d" / split / cls).mkdir(parents=True)
            (tmp_path / "d" / split / cls / "a.png").write_bytes(encode(synthetic_face(0, 0), ".png"))
    with pytest.raises(DataError, match="test split has no folder .*fear"):
        load_dataset(tmp_path / "d")


def test_empty_split_folder_is_named(tmp_path):
    (tmp_path / "d" / "train" / "happy").mkdir(parents=True)
    (tmp_path / "d" / "train" / "happy" / "a.png").write_bytes(encode(synthetic_face(0, 0), ".png"))
    (tmp_path / "d" / "test").mkdir()
    with pytest.raises(DataError, match="test: split folder has no images"):
        load_dataset(tmp_path / "d")


def test_non_image_file_is_named_and_hidden_files_are_skipped(tmp_path):
    (tmp_path / "d" / "happy").mkdir(parents=True)
    (tmp_path / "d" / "happy" / "a.png").write_bytes(encode(synthetic_face(0, 0), ".png"))
    (tmp_path / "d" / "happy" / ".DS_Store").write_bytes(b"\0\0junk")
    (tmp_path / "d" / "happy" / "notes.txt").write_text("labelled by Bob")
    with pytest.raises(DataError, match="notes.txt: not an image file"):
        load_dataset(tmp_path / "d")


def test_undecodable_image_is_named(tmp_path):
    (tmp_path / "d" / "happy").mkdir(parents=True)
    (tmp_path / "d" / "happy" / "broken.jpg").write_bytes(b"not really a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        load_dataset(tmp_path / "d")


def test_mixed_sizes_are_resized(tmp_path):
    for ci, cls in enumerate(("happy", "sad")):
        (tmp_path / "d" / cls).mkdir(parents=True)
        for k, side in enumerate((48, 64, 100, 30, 48, 48, 48, 48, 48, 48)):
            img = np.resize(synthetic_face(ci, k), (side, side)).astype(np.uint8)
            (tmp_path / "d" / cls / f"{k}.png").write_bytes(encode(img, ".png"))
    data = load_dataset(tmp_path / "d")
    assert data.images.shape[1:] == (1, 48, 48)
    assert data.resized_images == 6


def test_malformed_csv_row_is_named(tmp_path):
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n0," + " ".join(["1"] * 2304) + ",Training\n3,1 2 3,Training\n")
    with pytest.raises(DataError, match="line 3"):
        load_dataset(path)


def test_missing_path_and_bad_zip(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "nope.zip")
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="not a readable zip"):
        load_dataset(tmp_path / "bad.zip")


def test_ferplus_majority_and_soft_labels(kaggle_zip, ferplus_dir):
    plain = load_dataset(kaggle_zip)
    data = load_dataset(kaggle_zip, labels="ferplus", ferplus_dir=ferplus_dir)
    assert data.classes == FERPLUS_CLASSES
    dropped = sum(1 for _, _, _, row in kaggle_entries() if row % 7 == 6)
    assert len(data) == len(plain) - dropped
    assert "dropped" in data.split_method
    # 8 of 10 votes on the FER2013 class: majority equals the original class
    for name, label in zip(data.names, data.labels.tolist(), strict=True):
        assert data.classes[label] == FER2013_CLASSES[int(plain.labels[plain.names.index(name)])]
    assert data.soft_labels.shape == (len(data), 8)
    assert torch.allclose(data.soft_labels.sum(1), torch.ones(len(data)))
    assert torch.allclose(data.soft_labels[:, FERPLUS_CLASSES.index("contempt")], torch.full((len(data),), 0.2))


def test_ferplus_from_csv_joins_by_row_position(fer2013_csv, ferplus_dir, kaggle_zip):
    from_csv = load_dataset(fer2013_csv, labels="ferplus", ferplus_dir=ferplus_dir)
    from_zip = load_dataset(kaggle_zip, labels="ferplus", ferplus_dir=ferplus_dir)
    assert sorted(from_csv.labels.tolist()) == sorted(from_zip.labels.tolist())


def test_ferplus_found_in_sibling_folder(fixtures_dir, kaggle_zip, ferplus_dir, tmp_path):
    (tmp_path / "fer2013").mkdir()
    shutil.copy(kaggle_zip, tmp_path / "fer2013" / "fer2013.zip")
    shutil.copytree(ferplus_dir, tmp_path / "ferplus")
    assert load_dataset(tmp_path / "fer2013" / "fer2013.zip", labels="ferplus").label_source == "ferplus"


def test_class_subset_drops_disgust(kaggle_zip):
    data = load_dataset(kaggle_zip, classes=[c for c in FER2013_CLASSES if c != "disgust"])
    assert "disgust" not in data.classes and len(data.classes) == 6
    assert len(data) == 30 and int(data.labels.max()) == 5


def test_keeping_every_class_keeps_the_data_and_its_fingerprint(kaggle_zip, ferplus_dir):
    """Evaluation reloads data with a checkpoint's classes: the same classes must give the same fingerprint, FER+
    soft labels included (renormalising them changed float bits, and with them the fingerprint)."""
    for data in (load_dataset(kaggle_zip), load_dataset(kaggle_zip, labels="ferplus", ferplus_dir=ferplus_dir)):
        assert data.with_classes(list(data.classes)) is data
        assert (
            load_dataset(kaggle_zip, labels=data.label_source, ferplus_dir=ferplus_dir, classes=list(data.classes)).fingerprint
            == data.fingerprint
        )


def test_cache_hit_is_identical_and_changes_with_content(kaggle_zip, tmp_path):
    first = load_dataset(kaggle_zip, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    second = load_dataset(kaggle_zip, cache_dir=tmp_path)
    assert second.fingerprint == first.fingerprint and torch.equal(second.images, first.images)
    changed = tmp_path / "changed.zip"
    shutil.copy(kaggle_zip, changed)
    with zipfile.ZipFile(changed, "a") as zf:
        zf.writestr("train/happy/Training_9999.jpg", encode(synthetic_face(3, 99)))
    assert len(load_dataset(changed, cache_dir=tmp_path)) == len(first) + 1


def test_corrupt_cache_is_rebuilt(kaggle_zip, tmp_path):
    load_dataset(kaggle_zip, cache_dir=tmp_path)
    cache = next(tmp_path.glob("*.safetensors"))
    cache.write_bytes(b"garbage")
    assert len(load_dataset(kaggle_zip, cache_dir=tmp_path)) == 35


def test_summary_finds_duplicates_leakage_conflicts_and_blanks(tmp_path):
    black = np.zeros((48, 48), np.uint8)
    face = synthetic_face(1, 1)
    files = {
        "train/happy/Training_1.png": face,
        "test/happy/PrivateTest_2.png": face,  # leaks into test
        "train/sad/Training_3.png": face,  # same pixels, other label
        "train/sad/Training_4.png": black,
        "test/sad/PublicTest_5.png": synthetic_face(4, 2),
        "train/happy/Training_6.png": synthetic_face(3, 3),
    }
    for rel, img in files.items():
        (tmp_path / "d" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "d" / rel).write_bytes(encode(img, ".png"))
    s = summarize(load_dataset(tmp_path / "d"))
    assert s.duplicate_groups == 1 and s.duplicate_extra_copies == 2
    assert s.groups_across_train_and_eval == 1 and s.groups_with_conflicting_labels == 1
    assert s.blank_images == 1 and s.blank_names == ("train/sad/Training_4.png",)
    assert s.counts["train"]["sad"] == 2
    assert DatasetSummary.from_dict(json.loads(json.dumps(s.to_dict()))) == s  # what the Overview's cache reads back


def test_dataset_overview_is_cached_and_read_back_without_torch(kaggle_zip, tmp_path):
    """The Overview's dataset section comes from a cache file in a new process without importing torch."""
    first = dataset_overview(kaggle_zip, cache_dir=tmp_path)
    assert first.summary == summarize(load_dataset(kaggle_zip, cache_dir=tmp_path))
    assert set(first.samples) == set(FER2013_CLASSES)
    assert all(f.dtype == np.uint8 and f.shape[1:] == (48, 48) and 1 <= len(f) <= 8 for f in first.samples.values())
    assert len(list(tmp_path.glob("*.overview-*.safetensors"))) == 1
    code = (
        "import sys, json; from pathlib import Path; from fer_core.data import dataset_overview; "
        f"o = dataset_overview({str(kaggle_zip)!r}, cache_dir=Path({str(tmp_path)!r})); "
        "print(json.dumps([o.summary.to_dict(), {c: f.tolist() for c, f in o.samples.items()}, 'torch' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    summary, samples, imported_torch = json.loads(out.stdout)
    assert summary == json.loads(json.dumps(first.summary.to_dict())) and not imported_torch
    assert {c: np.array(f, np.uint8).tolist() for c, f in samples.items()} == {c: f.tolist() for c, f in first.samples.items()}


def test_damaged_overview_cache_is_recomputed(kaggle_zip, tmp_path):
    first = dataset_overview(kaggle_zip, cache_dir=tmp_path)
    next(tmp_path.glob("*.overview-*.safetensors")).write_bytes(b"garbage")
    again = dataset_overview(kaggle_zip, cache_dir=tmp_path)
    assert again.summary == first.summary and again.samples.keys() == first.samples.keys()
    with pytest.raises(DataError, match="no such file"):
        dataset_overview(tmp_path / "missing.zip", cache_dir=tmp_path)


@pytest.mark.parametrize("preset", AUGMENT_PRESETS)
def test_augmentation_is_per_sample_and_shape_preserving(preset):
    torch.manual_seed(0)
    x = torch.from_numpy(np.stack([synthetic_face(2, 0)] * 16)).float().div(255)[:, None]
    out = augment_batch(build_augmentation(preset), x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    distinct = len({o.numpy().tobytes() for o in out})
    assert distinct == 1 if preset == "none" else distinct >= 14


@pytest.mark.parametrize("preset", ["robust", "robust_mix"])
def test_robust_presets_never_imitate_the_held_out_corruptions(preset):
    """The held-out mCE means something only if training never sees those corruptions."""
    held_out = {"motion_blur": K.RandomMotionBlur, "jpeg": K.RandomJPEG, "underexposure": K.RandomGamma}
    assert set(held_out) == set(HELD_OUT)
    kinds = {type(m) for m in build_augmentation(preset).modules()}
    assert not kinds & set(held_out.values())
    assert {K.RandomGaussianBlur, RandomNoiseLevel, RandomLowResolution} <= kinds


def test_noise_level_and_low_resolution_draw_per_face():
    torch.manual_seed(0)
    flat = torch.full((64, 1, 48, 48), 0.5)
    noisy = RandomNoiseLevel(std=(0.01, 0.12), p=1.0)(flat)
    stds = (noisy - flat).flatten(1).std(1)
    assert stds.min() < 0.03 and stds.max() > 0.09  # each face its own sigma
    checker = ((torch.arange(48)[:, None] + torch.arange(48)[None]) % 2).float().expand(64, 1, 48, 48)
    low = RandomLowResolution((12, 24, 48), p=1.0)(checker)
    sides = {round(float(f.std()), 3) for f in low}
    assert low.shape == checker.shape and len(sides) >= 2  # down to 12 or 24 px erases the checkerboard, 48 keeps it
    assert min(sides) < 0.05 and max(sides) == pytest.approx(float(checker[0].std()), abs=1e-3)


def test_augmix_mixes_chains_with_the_face_by_convex_weights():
    torch.manual_seed(0)
    x = torch.rand(32, 1, 48, 48)
    assert torch.allclose(AugMix([torch.nn.Identity()])(x), x, atol=1e-6)  # weights sum to one

    class Black(torch.nn.Module):
        def forward(self, faces: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(faces)

    kept = (AugMix([Black()])(x) / x).flatten(1)
    assert torch.allclose(kept, kept[:, :1], atol=1e-4)  # one weight per face...
    assert 0 < kept.min() < kept.max() < 1  # ...drawn per face, strictly between the chains and the face


def test_random_crop_for_crop_models():
    x = torch.rand(4, 1, 48, 48)
    assert augment_batch(build_augmentation("light", crop_size=40), x).shape == (4, 1, 40, 40)


def test_to_model_input_resizes_crops_and_adapts_channels():
    x = torch.randint(0, 256, (2, 1, 48, 48), dtype=torch.uint8)
    assert to_model_input(x, InputSpec(75, 3)).shape == (2, 3, 75, 75)
    crop = to_model_input(x, InputSpec(40, 1, "crop"))
    assert crop.shape == (2, 1, 40, 40)
    assert torch.allclose(crop, (x[..., 4:44, 4:44].float() / 255 - 0.5) / 0.5)
    native = to_model_input(x, InputSpec())
    assert native.min() >= -1 and native.max() <= 1


shared = pytest.mark.skipif(not FER2013_ZIP.is_file(), reason="../shared/data is not present")


@shared
def test_real_fer2013_official_protocol_and_flaws():
    data = load_dataset(FER2013_ZIP)
    assert data.split_sizes() == {"train": 28709, "val": 3589, "test": 3589}
    s = summarize(data)
    # figures measured in ../shared/data/README.md
    assert s.counts["train"]["happy"] == 7215 and s.counts["train"]["disgust"] == 436
    assert (s.duplicate_groups, s.duplicate_extra_copies) == (1516, 1853)
    assert s.groups_across_train_and_eval == 531
    assert s.groups_with_conflicting_labels == 57
    assert s.blank_images == 13
    t = time.perf_counter()
    again = load_dataset(FER2013_ZIP)
    assert time.perf_counter() - t < 5  # the cached load (the benchmark reports the real figure)
    assert again.fingerprint == data.fingerprint


@shared
def test_real_ferplus_labels():
    data = load_dataset(FER2013_ZIP, labels="ferplus", ferplus_dir=FERPLUS_DIR)
    assert data.classes == FERPLUS_CLASSES
    sizes = data.split_sizes()
    assert 24000 < sizes["train"] < 28709 and 3000 < sizes["test"] < 3589
    assert torch.bincount(data.labels, minlength=8)[FERPLUS_CLASSES.index("contempt")] > 0
    # the shipped FER+ checkpoint was trained on exactly this data; asking for its classes must not change it
    shipped = next(c.meta for c in list_checkpoints(REPO / "checkpoints") if c.meta and c.meta.data.label_source == "ferplus")
    again = load_dataset(FER2013_ZIP, labels="ferplus", ferplus_dir=FERPLUS_DIR, classes=shipped.classes)
    assert data.fingerprint == again.fingerprint == shipped.data.fingerprint
