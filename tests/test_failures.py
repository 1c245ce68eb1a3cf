"""Where models fail: label-noise buckets against hand-written crowd votes, the corruption suite's definitions,
robustness runs and their cache, corruption error arithmetic, and the two CLI commands."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from fer_core.classifier import load_checkpoint
from fer_core.data import FERPLUS_CLASSES, DataError
from fer_core.failures import robustness as rb
from fer_core.failures.cache import weights_digest
from fer_core.failures.corruptions import CORRUPTIONS, HELD_OUT, SUITE, corrupt
from fer_core.failures.label_noise import (
    BUCKETS,
    CrowdVotes,
    crowd_votes,
    find_crowd_votes,
    flag_agreement,
    label_issues,
    label_noise,
)
from fer_core.records import Predictions
from fer_core.store import WEIGHTS_FILE, dataset_for, list_checkpoints

from .conftest import kaggle_entries
from .test_cli import cli

CLASSES = ("angry", "happy", "sad")


def _predictions(labels: list[int], predicted: list[int]) -> Predictions:
    probs = np.full((len(labels), len(CLASSES)), 0.1, np.float32)
    probs[np.arange(len(labels)), predicted] = 0.8
    return Predictions(probs, np.array(labels), tuple(f"f{i}" for i in range(len(labels))), CLASSES)


def test_every_face_lands_in_exactly_one_bucket_with_exact_counts():
    # face: label, prediction, crowd majority -> bucket
    faces = [
        (0, 0, "angry", "correct"),
        (1, 1, "", "correct"),  # right by its label, whatever the crowd says
        (0, 1, "happy", "crowd_agrees_with_model"),
        (2, 0, "angry", "crowd_agrees_with_model"),
        (0, 2, "angry", "crowd_agrees_with_label"),
        (1, 2, "angry", "crowd_agrees_with_neither"),
        (1, 0, "contempt", "crowd_agrees_with_neither"),  # a majority the model cannot predict
        (2, 1, "", "no_crowd_majority"),
    ]
    predictions = _predictions([f[0] for f in faces], [f[1] for f in faces])
    crowd = CrowdVotes(predictions.names, np.zeros((len(faces), 10), np.float32), tuple(f[2] for f in faces))
    noise = label_noise("m", predictions, crowd)
    assert [BUCKETS[b] for b in noise.buckets] == [f[3] for f in faces]
    assert noise.counts() == {"correct": 2, "crowd_agrees_with_model": 2, "crowd_agrees_with_label": 1} | {
        "crowd_agrees_with_neither": 2,
        "no_crowd_majority": 1,
    }
    assert noise.errors == 6 and noise.outside_classes == 1 and noise.crowd_sides_with_model == 2 / 6
    # Against the crowd: the five faces whose majority is one of the model's classes, three predicted as it says.
    assert (noise.crowd_accuracy().value, noise.crowd_accuracy().faces) == (3 / 5, 5)
    # The agreed subset: faces 0 and 4, whose label is the crowd's majority; the model is right on face 0 only.
    assert (noise.agreed_accuracy().value, noise.agreed_accuracy().faces) == (0.5, 2)
    sad = next(c for c in noise.per_class() if c.name == "sad")
    assert sad.counts["crowd_agrees_with_model"] == 1 and sad.counts["no_crowd_majority"] == 1 and sad.faces == 2
    assert sad.errors == 2 and sad.crowd_sides_with_model == 0.5
    assert noise.faces_in("crowd_agrees_with_model", "sad").tolist() == [3]
    interval = label_noise("m", predictions, crowd).crowd_accuracy().ci
    assert interval.low <= 3 / 5 <= interval.high and interval.low < interval.high
    with pytest.raises(DataError, match="other faces"):
        label_noise("m", predictions, CrowdVotes(("x",) * 8, crowd.votes, crowd.majority))


def test_crowd_votes_join_kaggle_files_by_row(kaggle_zip, ferplus_dir):
    entries = kaggle_entries()
    names = tuple(rel for rel, *_ in entries)
    crowd = crowd_votes(names, ferplus_dir)
    for (_, _, ci, row), majority, votes in zip(entries, crowd.majority, crowd.votes, strict=True):
        # the fixture's votes: 8 for the class, 2 for contempt (single votes are dropped, 2 are not); every 7th row NF
        assert majority == ("" if row % 7 == 6 else FERPLUS_CLASSES[ci])
        assert votes.sum() == 10
    assert find_crowd_votes(kaggle_zip, names).majority == crowd.majority
    with pytest.raises(DataError, match="FER\\+ votes not found"):
        find_crowd_votes(None, names)


def test_cleanlab_flags_the_faces_whose_label_contradicts_confident_predictions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    probs = np.full((300, 3), 0.05, np.float32)
    probs[np.arange(300), labels] = 0.9
    wrong = np.arange(0, 300, 10)  # every tenth label is another class than the model is sure of
    noisy = labels.copy()
    noisy[wrong] = (labels[wrong] + 1) % 3
    predictions = Predictions(probs, noisy, tuple(map(str, range(300))), CLASSES)
    issues = label_issues("m", predictions)
    assert set(issues.flagged.tolist()) == set(wrong.tolist())
    crowd = CrowdVotes(predictions.names, np.zeros((300, 10), np.float32), tuple(CLASSES[c] for c in labels))
    agreement = flag_agreement(issues, crowd, predictions)
    assert (agreement.precision, agreement.recall, agreement.crowd_disagrees) == (1.0, 1.0, len(wrong))


@pytest.fixture(scope="module")
def photo_faces(grace_hopper) -> np.ndarray:
    """Sixteen 48x48 crops of a real photo: textures a synthetic disc lacks (it looks the same rotated)."""
    photo = cv2.resize(cv2.imread(str(grace_hopper), cv2.IMREAD_GRAYSCALE), (96, 120))
    return np.stack([photo[y : y + 48, x : x + 48] for y in range(0, 72, 18) for x in range(0, 48, 12)])


@pytest.mark.parametrize("corruption", SUITE, ids=lambda c: c.name)
def test_each_corruption_is_seeded_identity_at_zero_and_grows_with_severity(corruption, photo_faces):
    faces = photo_faces
    assert np.array_equal(corrupt(faces, corruption.name, 0), faces)
    distances = []
    for severity in corruption.severities:
        out = corrupt(faces, corruption.name, severity)
        assert out.dtype == np.uint8 and out.shape == faces.shape
        assert np.array_equal(out, corrupt(faces, corruption.name, severity))  # deterministic
        distances.append(np.abs(out.astype(float) - faces).mean())
    assert distances[0] > 0
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False)), distances
    with pytest.raises(ValueError, match="severities"):
        corrupt(faces, corruption.name, len(corruption.levels) + 1)


def test_an_unknown_corruption_or_severity_is_named_in_the_error():
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        rb.conditions(["fog"])
    with pytest.raises(ValueError, match="severities are 1 to 5, not 0, 9"):  # not a run of the flip control alone
        rb.conditions(severities=[0, 3, 9])


def test_the_flip_control_changes_a_symmetric_model_by_nothing(tiny_checkpoints, kaggle_zip, tmp_path, monkeypatch):
    class Symmetric(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) + self.inner(x.flip(-1))

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))  # results are keyed by the weights file: the wrapper's own
    info = list_checkpoints(tiny_checkpoints)[0]
    clf = load_checkpoint(info.path)
    clf.model = Symmetric(clf.model).eval()
    run = rb.robustness_run(clf, dataset_for(clf.meta, kaggle_zip), ["flip@1", "gaussian_noise@5"])
    assert np.array_equal(run.predictions["flip@1"].predicted, run.clean.predicted)
    assert run.accuracy("flip@1") == run.accuracy()


def test_robustness_is_cached_and_recomputed_for_new_weights_damage_and_a_new_suite(
    tiny_checkpoints, kaggle_zip, tmp_path, monkeypatch
):
    store = tmp_path / "store"
    shutil.copytree(tiny_checkpoints, store)
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    info = list_checkpoints(store)[0]
    data = dataset_for(info.meta, kaggle_zip)
    keys = ["gaussian_blur@1", "jpeg@5"]
    computed: list[str] = []

    def run() -> rb.RobustnessRun:
        return rb.robustness_run(load_checkpoint(info.path), data, keys, lambda d, t, what: computed.append(what))

    first = run()
    assert computed[:3] == ["clean", *keys] and first.clean.labels.tolist() == data.take("test")[1].tolist()
    assert first.accuracy() == pytest.approx(info.meta.test_metrics.accuracy)
    computed.clear()
    again = run()
    assert computed == ["done"] and again.accuracy("jpeg@5") == first.accuracy("jpeg@5")  # nothing recomputed
    assert rb.cached_run(info.path, info.meta, keys) is not None
    assert rb.cached_run(info.path, info.meta, ["jpeg@1"]) is None  # not computed yet: no partial answer

    state = load_file(str(info.path / WEIGHTS_FILE))
    save_file({k: v * 0.5 if v.is_floating_point() else v for k, v in state.items()}, str(info.path / WEIGHTS_FILE))
    computed.clear()
    assert run().weights != first.weights and computed[0] == "clean"  # new weights: all of it again

    rb.cache_file(info.id, weights_digest(info.path)).write_bytes(b"garbage")
    computed.clear()
    assert run().accuracy() >= 0 and computed[0] == "clean"  # damaged: recomputed, no traceback

    monkeypatch.setattr(rb, "SUITE_VERSION", rb.SUITE_VERSION + 1)
    computed.clear()
    run()
    assert computed[0] == "clean"  # another suite: old results do not count


def _run(name: str, accuracy: dict[str, float], n: int = 100) -> rb.RobustnessRun:
    labels = np.zeros(n, np.int64)
    out = {}
    for key, acc in accuracy.items():
        probs = np.tile(np.array([[0.1, 0.9, 0.0]], np.float32), (n, 1))
        probs[: round(acc * n)] = [0.9, 0.1, 0.0]
        out[key] = Predictions(probs, labels, tuple(map(str, range(n))), CLASSES)
    return rb.RobustnessRun(name, out)


def test_corruption_error_follows_hendrycks_and_dietterich():
    model = _run("m", {"clean": 0.9, "gaussian_blur@1": 0.8, "gaussian_blur@2": 0.6, "jpeg@1": 0.65, "flip@1": 0.9})
    reference = _run("ref", {"clean": 0.6, "gaussian_blur@1": 0.5, "gaussian_blur@2": 0.3, "jpeg@1": 0.4, "flip@1": 0.1})
    report = rb.report(model, reference)
    blur = next(s for s in report.scores if s.corruption == "gaussian_blur")
    assert blur.accuracy == {1: 0.8, 2: 0.6}
    assert blur.ce == pytest.approx((0.2 + 0.4) / (0.5 + 0.7))
    assert blur.relative_ce == pytest.approx((0.1 + 0.3) / (0.1 + 0.3))
    jpeg = next(s for s in report.scores if s.corruption == "jpeg")
    assert report.mce == pytest.approx((blur.ce + jpeg.ce) / 2)  # the flip control is left out
    assert report.worst == "jpeg" and report.mean_corrupted_accuracy == pytest.approx((0.7 + 0.65) / 2)
    alone = rb.report(model)
    assert alone.mce is None and "reference" in alone.reference_note
    ensemble = rb.ensemble_run([model, model])
    assert ensemble.accuracy("jpeg@1") == pytest.approx(0.65)


def test_held_out_and_seen_mce_split_the_suite_and_need_every_corruption_of_their_side():
    assert set(HELD_OUT) < set(CORRUPTIONS) and not any(CORRUPTIONS[n].control for n in HELD_OUT)
    keys = rb.conditions(severities=[1])
    accuracy = {"clean": 0.9} | {k: 0.5 if k.split("@")[0] in HELD_OUT else 0.8 for k in keys}
    model, reference = _run("m", accuracy), _run("ref", dict.fromkeys(accuracy, 0.5))
    r = rb.report(model, reference)
    assert r.mce_seen == pytest.approx(0.2 / 0.5) and r.mce_held_out == pytest.approx(0.5 / 0.5)
    assert r.mce == pytest.approx((0.4 * (len(SUITE) - 1 - len(HELD_OUT)) + 1.0 * len(HELD_OUT)) / (len(SUITE) - 1))
    held = rb.mce_interval(model, reference, held_out=True)
    seen = rb.mce_interval(model, reference, held_out=False)
    assert held is not None and seen is not None and seen.high < held.low  # each over its own corruptions only
    without_jpeg = rb.report(_run("m", {k: v for k, v in accuracy.items() if k != "jpeg@1"}), reference)
    assert without_jpeg.mce_held_out is None and without_jpeg.mce_seen == r.mce_seen  # a side short of one: no figure
    assert r.to_json()["held_out"] == list(HELD_OUT) and r.to_json()["mce_held_out"] == r.mce_held_out


def test_robustness_on_publictest_is_its_own_run_and_cache(tiny_checkpoints, kaggle_zip, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    info = list_checkpoints(tiny_checkpoints)[0]
    data = dataset_for(info.meta, kaggle_zip)
    clf = load_checkpoint(info.path)
    val = rb.robustness_run(clf, data, ["jpeg@1"], split="val")
    test = rb.robustness_run(clf, data, ["jpeg@1"])
    assert val.clean.names == data.names_of("val") and test.clean.names == data.names_of("test")
    assert val.clean.split == "val" and set(val.clean.names).isdisjoint(test.clean.names)
    assert rb.cached_run(info.path, info.meta, ["jpeg@1"], split="val").clean.names == val.clean.names
    assert rb.cached_run(info.path, info.meta, ["jpeg@1"]).clean.names == test.clean.names


def test_cli_label_noise_and_robustness_json(tiny_checkpoints, kaggle_zip, ferplus_dir, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(tiny_checkpoints, store)
    ids = [i.id for i in list_checkpoints(store)]
    noise = json.loads(
        cli("label-noise", "--checkpoints", store, "--data", kaggle_zip, "--ensemble", ",".join(ids), "--json").stdout
    )
    assert len(noise["models"]) == len(ids) + 1
    for model in noise["models"]:
        assert model["faces"] == 7 and model["errors"] == model["faces"] - model["correct"]
        assert sum(model[b] for b in BUCKETS) == model["faces"]
    args = ["--checkpoints", store, "--data", kaggle_zip, "--checkpoint", ids[0], "--corruptions", "gaussian_blur,flip"]
    out = json.loads(cli("robustness", *args, "--severities", "1,3", "--reference", ids[1], "--json").stdout)
    (model,) = out["models"]
    assert set(model["corruptions"]) == {"gaussian_blur", "flip"} and set(model["corruptions"]["gaussian_blur"]) == {"1", "3"}
    assert 0 <= model["clean"] <= 1 and out["reference"] == ids[1]
    bad = cli("robustness", *args[:4], "--corruptions", "fog", check=False)
    assert bad.returncode == 1 and "unknown corruption 'fog'" in bad.stderr
