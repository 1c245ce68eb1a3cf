"""Studies: bad files refused with one line naming the field; trials on a local Ray instance (shared by these tests)
land ordinary checkpoints and a report with intervals; failures are recorded; a killed driver resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import timm

from fer_core.evaluation import accuracy_interval, holm
from fer_core.failures import robustness
from fer_core.store import list_checkpoints, load_predictions
from fer_core.studies.report import study_report
from fer_core.studies.runner import resume_study, run_study
from fer_core.studies.runs import read_run, read_trials, study_dir, write_run
from fer_core.studies.spec import StudyError, load_study, parse_study

from .conftest import REPO

GOOD = """
name = "optimizers"
seeds = 2
[base]
model = "keras_cnn"
batch_size = 8
augment = "none"
warmup_epochs = 0
[axes]
optimizer = ["adam", "sgd"]
[budget]
epochs = 30
[profiles.quick]
epochs = 1
[profiles.full]
"""


def test_a_study_file_becomes_validated_trials():
    spec = parse_study(GOOD, "good.toml")
    trials = spec.trials("quick", data="d.zip", device="cpu")
    assert [t.id for t in trials] == ["p00-s0", "p00-s1", "p01-s0", "p01-s1"]
    assert [(t.point["optimizer"], t.seed) for t in trials] == [("adam", 0), ("adam", 1), ("sgd", 0), ("sgd", 1)]
    assert {t.config.epochs for t in trials} == {1} and {t.config.epochs for t in spec.trials("full")} == {30}
    assert all(
        t.config.optimizer == t.point["optimizer"] and t.config.seed == t.seed and t.config.data == "d.zip" for t in trials
    )
    assert spec.baseline == {"optimizer": "adam"}
    timed = parse_study(GOOD.replace("epochs = 30", "minutes = 5"), "timed.toml")
    assert {t.config.time_budget_min for t in timed.trials("full")} == {5} and timed.trials("full")[0].config.epochs == 1000


def test_the_shipped_study_files_validate():
    files = sorted((REPO / "studies").glob("*.toml"))
    assert {f.stem for f in files} >= {"keras_variants", "optimizer_lr", "augment_balance", "architectures", "activation_norm"}
    for file in files:
        spec = load_study(file)
        assert spec.name == file.stem and {"quick", "full"} <= set(spec.profiles)
        assert spec.profiles["quick"].train_fraction < 1 and spec.trial_ids("quick")


def test_trials_start_from_each_models_recipe():
    spec = parse_study(
        GOOD.replace('model = "keras_cnn"\n', "").replace('optimizer = ["adam", "sgd"]', 'model = ["keras_cnn", "vgg_fer"]'),
        "models.toml",
    )
    by_model = {t.config.model: t.config for t in spec.trials("full")}
    assert by_model["vgg_fer"].optimizer == "sgd" and by_model["keras_cnn"].optimizer == "adam"  # presets.PRESETS
    assert by_model["vgg_fer"].batch_size == by_model["keras_cnn"].batch_size == 8  # the study's base over both


def test_a_study_composed_in_the_app_is_a_valid_file():
    from fer_core.studies.spec import compose_study

    text = compose_study("mine", ["keras_cnn", "keras_cnn_wide"], "lr", "0.01, 0.001", 2, 5, 0.2)
    spec = parse_study(text, "mine.toml")
    assert spec.axes == {"model": ("keras_cnn", "keras_cnn_wide"), "lr": (0.01, 0.001)} and spec.seeds == 2
    quick = spec.trials("quick")
    assert len(quick) == 8 and {t.config.train_fraction for t in quick} == {0.2} and {t.config.epochs for t in quick} == {5}
    assert {t.config.train_fraction for t in spec.trials("full")} == {1.0}
    timm = parse_study(compose_study("timm", ["keras_cnn", "timm:convnext_atto@64"], None, "", 1, 3, 0.1))
    assert timm.axes == {"model": ("keras_cnn", "timm:convnext_atto@64")}  # any timm model, sized, on an axis
    one = parse_study(compose_study("one", ["vgg_fer"], "augment", "none, strong", 1, 3, 0.1))
    assert one.base == {"model": "vgg_fer"} and one.axes == {"augment": ("none", "strong")}
    with pytest.raises(StudyError, match="optimizer must be one of"):
        compose_study("bad", ["keras_cnn"], "optimizer", "adam, lion", 1, 3, 0.1)
    with pytest.raises(StudyError, match="axes.lr = 'abc': lr must be a number, not 'abc'"):  # not a TypeError's words
        compose_study("bad", ["keras_cnn"], "lr", "0.01, abc", 1, 3, 0.1)


def test_random_search_draws_points_and_keeps_the_baseline():
    text = GOOD.replace('optimizer = ["adam", "sgd"]', 'optimizer = ["adam", "sgd", "rmsprop", "adamw"]\nlr = [0.1, 0.01, 0.001]')
    spec = parse_study(text + '[search]\nkind = "random"\nsamples = 4\n', "random.toml")
    points = spec.points("quick")
    assert len(points) == 4 and points[0] == spec.baseline == {"optimizer": "adam", "lr": 0.1}
    assert points == spec.points("quick") and len({json.dumps(p) for p in points}) == 4


TPE = (
    GOOD.replace("seeds = 2", 'seeds = 1\nbaseline = { optimizer = "adam", lr = 0.001 }').replace(
        'optimizer = ["adam", "sgd"]', 'optimizer = ["adam", "sgd"]\nlr = { low = 1e-4, high = 1e-1, log = true }'
    )
    + '[search]\nkind = "tpe"\nsamples = 3\n'
)


def test_ranges_are_sampled_within_bounds_by_random_and_left_to_tpe():
    spec = parse_study(TPE.replace('"tpe"', '"random"').replace("samples = 3", "samples = 6"), "ranges.toml")
    points = spec.points("quick")
    assert points[0] == spec.baseline and len(points) == 6 and points == spec.points("quick")
    assert all(1e-4 <= p["lr"] <= 1e-1 and p["optimizer"] in ("adam", "sgd") for p in points)
    assert len({p["lr"] for p in points}) == 6  # six draws, no repeats
    # drawn on a log scale: a uniform draw puts each of five in the top decade with p 0.9, a log-uniform one with 1/3
    assert sum(p["lr"] < 1e-2 for p in points[1:]) >= 2
    tpe = parse_study(TPE, "tpe.toml")
    assert tpe.trial_ids("quick") == ["t00", "t01", "t02"] and tpe.search == "tpe"
    assert tpe.trial("t00", tpe.baseline, 0, "quick").config.lr == 0.001
    with pytest.raises(StudyError, match="chooses its points while it runs"):
        tpe.points("quick")


@pytest.mark.parametrize(
    "change, message",
    [
        (("tpe", "grid"), 'axes.lr: a range needs search kind "random" or "tpe"'),
        (("seeds = 1", "seeds = 2"), "tpe.toml: seeds: a TPE search trains each point it chooses once"),
        (("[profiles.quick]", "[profiles.quick]\nseeds = 3"), "profiles.quick.seeds: a TPE search trains each point"),
        (("samples = 3\n", ""), "search.samples: a tpe search needs a number of points"),
        (("low = 1e-4", "low = 0.5"), "axes.lr: a range needs numbers low < high, not 0.5 and 0.1"),
        (("low = 1e-4", "low = 0"), "axes.lr: a log range needs low > 0"),
        (("log = true", "step = 2"), "axes.lr: a range is { low = A, high = B, log = true|false }"),
        ((", lr = 0.001", ""), "tpe.toml: baseline.lr: a range axis needs its baseline value"),
        (("lr = 0.001 }", "lr = 0.5 }"), "baseline.lr: 0.5 is not a value of axes.lr"),
        (("samples = 3\n", 'samples = 3\nearly_stop = "asha"\ngrace_epochs = 5\n'), "profiles.quick: ASHA's grace_epochs 5"),
        (("[profiles.quick]", "[profiles.quick]\ngrace_epochs = 0"), "profiles.quick.grace_epochs: a positive whole number"),
    ],
    ids=[
        "range-in-grid",
        "tpe-seeds",
        "tpe-profile-seeds",
        "tpe-samples",
        "range-order",
        "log-zero",
        "range-key",
        "range-baseline",
        "baseline-outside",
        "asha-grace",
        "profile-grace",
    ],
)
def test_a_bad_search_is_refused_with_one_line_naming_the_field(change, message):
    old, new = change
    with pytest.raises(StudyError) as info:
        parse_study(TPE.replace(old, new, 1), "tpe.toml")
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "change, message",
    [
        (("[axes]", "[axes]\nbogus = [1]"), "good.toml: axes.bogus: not a TrainConfig field"),
        (('model = "keras_cnn"', 'model = "resnet99"'), "good.toml: base.model: unknown model 'resnet99'"),
        (
            ('model = "keras_cnn"', 'model = "timm:resnet99"'),
            f"good.toml: base.model: timm {timm.__version__} has no model 'resnet99'",
        ),
        (
            ('model = "keras_cnn"', 'model = "timm:inception_resnet_v2"'),
            "good.toml: base.model: timm:inception_resnet_v2 cannot take 48 px faces: it needs at least 75 px",
        ),
        (('optimizer = ["adam", "sgd"]', 'optimizer = ["adam", "lion"]'), "axes.optimizer = 'lion': optimizer must be one of"),
        (('optimizer = ["adam", "sgd"]', "optimizer = []"), "good.toml: axes.optimizer: must be a non-empty list"),
        (("epochs = 30", "minutes = 5\n[axes2]"), "good.toml: axes2: unknown key"),
        (("[axes]", '[axes]\nscheduler = ["step"]'), "a time budget needs"),
        (("[base]", "[base]\nseed = 3"), "good.toml: base.seed: set by the run or the budget"),
        (('name = "optimizers"', 'name = "../up"'), "good.toml: name: letters, digits"),
        (("seeds = 2", 'seeds = 2\nbaseline = { optimizer = "rmsprop" }'), "baseline.optimizer: 'rmsprop' is not a value"),
        (("[profiles.quick]", "[profiles.quick]\nwarp = 9"), "good.toml: profiles.quick.warp: unknown"),
        (("[profiles.full]", '[profiles.full]\n[search]\nkind = "random"'), "search.samples: a random search needs"),
        (("[profiles.full]", '[profiles.full]\n[search]\nkind = "bayes"'), "search.kind: one of grid, random, tpe"),
        (("seeds = 2", "seeds = 0"), "good.toml: seeds: a positive number"),
        (('model = "keras_cnn"', 'model = "keras_cnn'), "good.toml: not valid TOML"),
    ],
    ids=[
        "unknown-field",
        "unknown-model",
        "unknown-timm-model",
        "timm-model-too-small",
        "invalid-value",
        "empty-axis",
        "unknown-key",
        "budget-with-step",
        "run-field",
        "bad-name",
        "baseline",
        "profile-key",
        "random-samples",
        "search-kind",
        "seeds",
        "toml",
    ],
)
def test_a_bad_study_file_is_refused_with_one_line_naming_the_field(change, message):
    old, new = change
    text = GOOD.replace("epochs = 30", "minutes = 5") if "a time budget" in message else GOOD
    with pytest.raises(StudyError) as info:
        parse_study(text.replace(old, new, 1), "good.toml")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_holm_and_bootstrap_intervals():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    correct = np.array([1.0] * 70 + [0.0] * 30)
    ci = accuracy_interval(correct)
    # the normal approximation's 95% interval for 70 of 100: 0.7 -+ 1.96 * sqrt(0.7 * 0.3 / 100) = [0.610, 0.790]
    assert ci.low == pytest.approx(0.610, abs=0.025) and ci.high == pytest.approx(0.790, abs=0.025)
    assert accuracy_interval(np.array([1.0] * 700 + [0.0] * 300)).high - 0.7 == pytest.approx(0.028, abs=0.006)  # n x10
    assert accuracy_interval(np.ones(10)).low == 1.0


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance for the tests of this module (starting one costs seconds)."""
    import ray

    from fer_core.studies.runner import start_ray

    start_ray()
    yield
    ray.shutdown()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_a_quick_study_lands_checkpoints_and_a_report(ray_local, kaggle_zip, ferplus_dir, tmp_path, monkeypatch):
    spec = parse_study(GOOD, "good.toml")
    store, runs = tmp_path / "store", tmp_path / "runs"
    study_id, info = run_study(_write(tmp_path, GOOD), spec, "quick", str(kaggle_zip), "cpu", None, store, runs)
    assert info.state == "finished"
    trials = [c for c in list_checkpoints(store) if c.meta and c.meta.study and c.meta.study.study_id == study_id]
    assert sorted(c.meta.study.trial for c in trials) == ["p00-s0", "p00-s1", "p01-s0", "p01-s1"]
    assert all(c.meta.config.optimizer == c.meta.study.point["optimizer"] and c.meta.seed == c.meta.study.seed for c in trials)
    report = study_report(study_id, store, runs)
    assert [p.seeds for p in report.points] == [2, 2] and not report.failed and not report.unfinished
    baseline = next(p for p in report.points if p.baseline)
    other = next(p for p in report.points if not p.baseline)
    assert baseline.point == {"optimizer": "adam"} and baseline.p_value is None and 0 <= other.p_holm <= 1
    for point in report.points:
        members = [t for t in report.trials if t.point == point.point]
        assert point.accuracy_mean == pytest.approx(np.mean([t.accuracy for t in members]))
        assert point.accuracy_ci.low <= point.accuracy_mean <= point.accuracy_ci.high
    for t in report.trials:
        stored = load_predictions(store / t.checkpoint)
        assert t.accuracy == pytest.approx(stored.accuracy) and t.accuracy_ci.low <= t.accuracy <= t.accuracy_ci.high
    # Robustness beside accuracy: the crowd's votes are beside the data; mCE waits for the trials' robustness runs.
    assert all(p.agreed_ci.low <= p.agreed_accuracy <= p.agreed_ci.high for p in report.points)
    assert all(p.mce is None for p in report.points) and "no mCE" in report.robustness_note
    monkeypatch.setattr(robustness, "REFERENCE_MODEL", trials[0].meta.model)  # the store has no AlexNet
    for t in trials:
        robustness.checkpoint_run(t.id, kaggle_zip, robustness.conditions(severities=(1, 3, 5)), store, "torch")
    report = study_report(study_id, store, runs)
    assert all(p.mce is not None and p.mce_ci.low <= p.mce <= p.mce_ci.high for p in report.points)
    assert all(p.mce_held_out_ci.low <= p.mce_held_out <= p.mce_held_out_ci.high for p in report.points)
    assert not report.robustness_note


def test_failed_trials_are_recorded_and_the_others_finish(ray_local, kaggle_zip, tmp_path):
    text = (
        GOOD.replace("seeds = 2", "seeds = 1")
        .replace('optimizer = ["adam", "sgd"]', 'lr = [0.001, 1e12]\ninit_from = ["", "no-such-checkpoint"]')
        .replace('augment = "none"', 'augment = "none"\noptimizer = "sgd"')
    )
    spec = parse_study(text, "fails.toml")
    store, runs = tmp_path / "store", tmp_path / "runs"
    study_id, info = run_study(_write(tmp_path, text), spec, "quick", str(kaggle_zip), "cpu", None, store, runs)
    statuses = read_trials(study_dir(study_id, runs))
    assert info.state == "failed" and [s.state for s in statuses.values()] == ["done", "failed", "failed", "failed"]
    assert statuses["p02-s0"].error.startswith("loss became NaN at epoch 1")  # lr 1e12 from fresh weights
    assert statuses["p02-s0"].error.endswith("lower the learning rate")
    assert "no-such-checkpoint" in statuses["p01-s0"].error and "no-such-checkpoint" in statuses["p03-s0"].error
    assert [c.meta.study.trial for c in list_checkpoints(store)] == ["p00-s0"]  # failures leave no checkpoint
    report = study_report(study_id, store, runs)
    assert [t.trial for t in report.trials] == ["p00-s0"] and len(report.failed) == 3


def test_asha_stops_a_trial_that_trails_and_the_study_still_finishes(ray_local, kaggle_zip, tmp_path):
    """One trial at a time, ASHA on validation loss (continuous: no ties). On these 7 validation faces lr 3e-3 overfits
    at once (validation loss 2.19 at epoch 2) while lr 1e-9 barely moves (1.96): the first sets the rung, the second
    trails there and is stopped, leaves no checkpoint, and resume does not rerun it."""
    text = (
        GOOD.replace("seeds = 2", "seeds = 1")
        .replace('optimizer = ["adam", "sgd"]', "lr = [1e-9, 0.003]")
        .replace('augment = "none"', 'augment = "none"\nselect_by = "val_loss"')
        .replace(
            "[profiles.quick]\nepochs = 1",
            '[profiles.quick]\nepochs = 6\n[search]\nearly_stop = "asha"\ngrace_epochs = 2\nconcurrent = 1',
        )
    )
    spec = parse_study(text, "asha.toml")
    store, runs = tmp_path / "store", tmp_path / "runs"
    study_id, info = run_study(_write(tmp_path, text), spec, "quick", str(kaggle_zip), "cpu", None, store, runs)
    statuses = read_trials(study_dir(study_id, runs))
    assert info.state == "finished" and statuses["p00-s0"].state == "done" and statuses["p00-s0"].epoch == 6
    assert statuses["p01-s0"].state == "stopped" and statuses["p01-s0"].epoch == 2
    assert [c.meta.study.trial for c in list_checkpoints(store)] == ["p00-s0"]
    assert resume_study(study_id, store, runs).state == "finished" and len(list_checkpoints(store)) == 1


def test_a_tpe_search_trains_the_baseline_then_its_own_points_and_resumes_from_them(ray_local, kaggle_zip, tmp_path, monkeypatch):
    store, runs = tmp_path / "store", tmp_path / "runs"
    spec = parse_study(TPE, "tpe.toml")
    study_id, info = run_study(_write(tmp_path, TPE), spec, "quick", str(kaggle_zip), "cpu", None, store, runs)
    by_trial = {c.meta.study.trial: c for c in list_checkpoints(store)}
    assert info.state == "finished" and sorted(by_trial) == ["t00", "t01", "t02"]
    assert by_trial["t00"].meta.study.point == spec.baseline  # the searcher's first point
    for c in by_trial.values():
        point = c.meta.study.point
        assert 1e-4 <= point["lr"] <= 1e-1 and point["optimizer"] in ("adam", "sgd")
        assert c.meta.config.lr == point["lr"] and c.meta.config.optimizer == point["optimizer"]
    assert len({c.meta.study.point["lr"] for c in by_trial.values()}) == 3
    report = study_report(study_id, store, runs)
    assert len(report.points) == 3 and sum(p.baseline for p in report.points) == 1
    assert all(p.p_holm is not None for p in report.points if not p.baseline)
    # A lost trial: resume trains only it, at a new point chosen knowing the two that finished
    kept = {t: by_trial[t].path.joinpath("model.safetensors").stat().st_mtime_ns for t in ("t00", "t01")}
    lost = by_trial["t02"].meta.study.point
    shutil.rmtree(by_trial["t02"].path)
    from ray.tune.search.optuna import OptunaSearch

    told: list[tuple[dict, float]] = []
    tell = OptunaSearch.add_evaluated_point
    monkeypatch.setattr(OptunaSearch, "add_evaluated_point", lambda self, p, v, **k: (told.append((p, v)), tell(self, p, v, **k)))
    assert resume_study(study_id, store, runs).state == "finished"

    # the searcher went on from what the two finished trials found, each with its best validation accuracy
    def objective(meta) -> float:  # the checkpoint's own selection rule, as the search maximises it
        return max(-e.val_loss if meta.config.select_by == "val_loss" else e.val_acc for e in meta.history)

    best = {t: objective(by_trial[t].meta) for t in ("t00", "t01")}
    assert sorted(v for _, v in told) == pytest.approx(sorted(best.values()))
    assert sorted(p["point/lr"] for p, _ in told) == sorted(by_trial[t].meta.study.point["lr"] for t in best)
    again = {c.meta.study.trial: c for c in list_checkpoints(store)}
    assert sorted(again) == ["t00", "t01", "t02"] and again["t02"].meta.study.point != lost
    assert all(again[t].path.joinpath("model.safetensors").stat().st_mtime_ns == kept[t] for t in kept)


def test_a_run_that_cannot_start_fails_at_once_and_says_why(kaggle_zip, tmp_path):
    from devtools.launch import free_port

    runs = tmp_path / "runs"
    spec = parse_study(GOOD, "good.toml")
    t = time.monotonic()
    with pytest.raises(StudyError, match="nothing answers there"):
        run_study(_write(tmp_path, GOOD), spec, "quick", str(kaggle_zip), "cpu", f"127.0.0.1:{free_port()}", tmp_path, runs)
    [info] = [read_run(d) for d in runs.iterdir()]
    assert time.monotonic() - t < 30 and info.state == "failed" and "nothing answers there" in info.error
    trials = read_trials(study_dir(info.study_id, runs)).values()  # none left saying queued or running
    assert len(trials) == 4 and all(t.state == "failed" and "the study run failed" in (t.error or "") for t in trials)


def test_a_killed_driver_resumes_and_reruns_only_the_missing_trials(ray_local, kaggle_zip, tmp_path):
    store, runs = tmp_path / "store", tmp_path / "runs"
    text = GOOD.replace("[profiles.quick]\nepochs = 1", "[profiles.quick]\nepochs = 3")
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fer_core",
            "study",
            "run",
            str(_write(tmp_path, text)),
            "--data",
            str(kaggle_zip),
            "--device",
            "cpu",
            "--checkpoints",
            str(store),
            "--runs",
            str(runs),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not any(list_checkpoints(store)):
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray instance it started
    driver.wait()
    first = {c.id: c.path.joinpath("model.safetensors").stat().st_mtime_ns for c in list_checkpoints(store)}
    assert 1 <= len(first) < 4, "the driver should die with trials left"
    [study_id] = [d.name for d in runs.iterdir()]
    assert read_run(study_dir(study_id, runs)).state == "interrupted"  # its driver is gone
    info = resume_study(study_id, store, runs)
    after = {c.id: c.path.joinpath("model.safetensors").stat().st_mtime_ns for c in list_checkpoints(store)}
    assert info.state == "finished" and len(after) == 4
    assert all(after[cid] == mtime for cid, mtime in first.items())  # finished trials were not trained again


def test_a_study_on_a_dataset_that_is_not_there_is_refused_at_once(monkeypatch, tmp_path):
    """Both launch forms (a shipped study, a composed one) say what is wrong with the dataset and start nothing,
    rather than a background run that fails trial by trial."""
    from fer_core.studies import spec as study_spec
    from fer_core.studies.runs import list_runs

    from .test_app import run_page

    runs = tmp_path / "runs"
    monkeypatch.setenv("FER_RUNS", str(runs))
    monkeypatch.setenv("FER_CHECKPOINTS", str(tmp_path / "store"))
    monkeypatch.setenv("FER_DATA", str(tmp_path / "missing.zip"))
    monkeypatch.setattr(study_spec, "shipped_studies", lambda: [_write(tmp_path, GOOD)])
    at = run_page("app_pages/studies.py")
    at.text_input(key="study_data").set_value(str(tmp_path / "missing.zip"))
    next(b for b in at.button if b.label == "Launch").click().run()
    assert any("Cannot launch" in e.value and "missing.zip: no such file or folder" in e.value for e in at.error), [
        e.value for e in at.error
    ]
    at.text_input(key="study_data").set_value("  ")
    next(b for b in at.button if b.label == "Launch composed study").click().run()
    assert any("Cannot launch: give the path of FER2013" in e.value for e in at.error)
    assert not at.exception and list_runs(runs / "studies") == []


def test_the_studies_page_launches_follows_and_reports(monkeypatch, kaggle_zip, tmp_path):
    from fer_core.store import delete_checkpoint, hidden_checkpoints
    from fer_core.studies import spec as study_spec
    from fer_core.studies.runs import RunInfo, list_runs

    from .test_app import run_page

    store, runs = tmp_path / "store", tmp_path / "runs"
    monkeypatch.setenv("FER_CHECKPOINTS", str(store))
    monkeypatch.setenv("FER_RUNS", str(runs))
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    monkeypatch.chdir(REPO)
    tiny = _write(tmp_path, GOOD.replace('name = "optimizers"', 'name = "tiny"'))
    monkeypatch.setattr(study_spec, "shipped_studies", lambda: [tiny])
    at = run_page("app_pages/studies.py")
    assert any("No study has run yet" in i.value for i in at.info)
    old = study_dir("tiny-quick-old", runs / "studies")  # an earlier run, which the picker shows first
    (old / "trials").mkdir(parents=True)
    shutil.copyfile(tiny, old / "study.toml")
    write_run(old, RunInfo("tiny-quick-old", "quick", str(kaggle_zip), "cpu", None, None, "finished", "2026-01-01"))
    at.run()
    assert at.selectbox(key="study_run").value == "tiny-quick-old"
    next(b for b in at.button if b.label == "Launch").click().run()
    assert not at.exception, [e.message for e in at.exception]
    launched = list_runs(runs / "studies")[0]
    assert launched.study_id.startswith("tiny-quick-2") and launched.pid
    assert at.selectbox(key="study_run").value == launched.study_id  # the picker follows the launch
    deadline = time.time() + 300
    while time.time() < deadline and list_runs(runs / "studies")[0].state in ("starting", "running"):
        time.sleep(1)
    assert list_runs(runs / "studies")[0].state == "finished", (
        study_dir(launched.study_id, runs / "studies") / "log.txt"
    ).read_text()
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    trials, results = at.dataframe[0].value, at.dataframe[1].value
    assert list(trials["state"]) == ["done"] * 4 and set(results["point"]) == {"optimizer=adam", "optimizer=sgd"}
    assert "baseline" in set(results["p (Holm)"]) and any("Baseline" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Hide all 4").click().run()  # a whole study's trials in one step
    assert hidden_checkpoints(store) == {c.id for c in list_checkpoints(store)} and len(list_checkpoints(store)) == 4
    # A run whose driver died: the page says so and offers to resume it
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    directory = study_dir("tiny-quick-dead", runs / "studies")
    shutil.copytree(study_dir(launched.study_id, runs / "studies"), directory)
    write_run(directory, replace(read_run(directory), study_id="tiny-quick-dead", state="running", pid=dead.pid))
    at.run()
    at.selectbox(key="study_run").set_value("tiny-quick-dead").run()
    assert any("driver is gone" in w.value for w in at.warning) and any(b.label == "Resume study" for b in at.button)
    # A baseline point without a checkpoint (deleted here; running, failed or stopped by ASHA elsewhere): no p-values
    for trial in read_trials(study_dir(launched.study_id, runs / "studies")).values():
        if trial.point == {"optimizer": "adam"}:
            delete_checkpoint(trial.checkpoint, store)
    at.selectbox(key="study_run").set_value(launched.study_id).run()
    assert not at.exception, [e.message for e in at.exception]
    results = at.dataframe[1].value
    assert list(results["point"]) == ["optimizer=sgd"] and list(results["p (Holm)"]) == [""]


def test_a_trials_progress_says_where_it_is():
    from fer_core.studies.runs import TrialStatus

    running = TrialStatus("p0-s0", "running", {}, 0, epoch=1)
    assert running.progress() == "epoch 2: starting"
    assert replace(running, batch=40, batches=225).progress() == "epoch 2, batch 40/225"
    assert replace(running, batch=225, batches=225).progress() == "epoch 2: validating"
    testing = replace(running, epoch=2, batches=225, stage="testing the best epoch's weights (2) on 3589 test faces")
    assert testing.progress() == testing.stage  # not "epoch 3" of a two-epoch run
    assert replace(testing, state="done").progress() == "2 epochs" and replace(running, state="done").progress() == "1 epoch"


def test_cancelling_a_run_whose_driver_is_gone_cancels_its_unfinished_trials_at_once(tmp_path):
    from fer_core.studies.runs import RunInfo, TrialStatus, cancel_study, write_trial

    directory = study_dir("gone-quick-1", tmp_path)
    (directory / "trials").mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_run(directory, RunInfo("gone-quick-1", "quick", "/data", "cpu", None, None, "running", "now", dead.pid))
    for trial, state in (("a", "running"), ("b", "queued"), ("c", "done"), ("d", "failed")):
        write_trial(directory, TrialStatus(trial, state, {}, 0))
    assert cancel_study("gone-quick-1", tmp_path).state == "cancelled"
    assert {t: s.state for t, s in read_trials(directory).items()} == {
        "a": "cancelled",
        "b": "cancelled",
        "c": "done",
        "d": "failed",
    }
    with pytest.raises(ValueError, match="nope: not a study run"):  # not an error about a flag file
        cancel_study("nope", tmp_path)


def _wait(condition, deadline: float, what: str):
    while time.time() < deadline:
        if found := condition():
            return found
        time.sleep(0.5)
    raise AssertionError(f"gave up waiting for {what}")


def test_the_studies_page_shows_a_diverged_a_cancelled_and_a_running_trial(monkeypatch, kaggle_zip, tmp_path):
    """Status files as a live run writes them (this process stands in for its driver): no training needed."""
    from fer_core.studies.runs import RunInfo, TrialStatus, cancel_trial, write_trial

    from .test_app import run_page

    runs = tmp_path / "runs"
    monkeypatch.setenv("FER_CHECKPOINTS", str(tmp_path / "store"))
    monkeypatch.setenv("FER_RUNS", str(runs))
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    monkeypatch.chdir(REPO)
    directory = study_dir("demo-quick-1", runs / "studies")
    (directory / "trials").mkdir(parents=True)
    _write(directory, GOOD).rename(directory / "study.toml")
    write_run(directory, RunInfo("demo-quick-1", "quick", str(kaggle_zip), "cpu", None, None, "running", "now", os.getpid()))
    diverged = "loss became NaN at epoch 2, batch 25 (lr 0.5): lower the learning rate"
    write_trial(directory, TrialStatus("p00-s0", "failed", {"optimizer": "adam"}, 0, epoch=1, error=diverged))
    write_trial(directory, TrialStatus("p00-s1", "cancelled", {"optimizer": "adam"}, 1, epoch=1, val_acc=0.31))
    write_trial(directory, TrialStatus("p01-s0", "running", {"optimizer": "sgd"}, 0, epoch=1, batch=40, batches=225))
    write_trial(directory, TrialStatus("p01-s1", "queued", {"optimizer": "sgd"}, 1))
    at = run_page("app_pages/studies.py")
    trials = at.dataframe[0].value.set_index("trial")
    assert list(trials["state"]) == ["failed", "cancelled", "running", "queued"]
    assert trials.loc["p00-s0", "error"] == diverged and trials.loc["p01-s0", "progress"] == "epoch 2, batch 40/225"
    assert trials.loc["p00-s1", "val acc"] == "31.0%" and trials.loc["p01-s1", "val acc"] == ""  # never a literal None
    assert any("1 running" in m.value and "1 failed" in m.value and "1 cancelled" in m.value for m in at.markdown)
    assert at.selectbox(key="trial-demo-quick-1").options == ["p01-s0", "p01-s1"]  # only unfinished trials
    cancel_trial("demo-quick-1", "p01-s0", runs / "studies")
    at.run()
    assert at.dataframe[0].value.set_index("trial").loc["p01-s0", "state"] == "cancelling"
    at.button(key="cancel-demo-quick-1").click().run()
    assert any("Cancelling: running trials stop" in i.value for i in at.info)
    assert at.button(key="cancel-demo-quick-1").disabled and any(m.value.startswith("**cancelling**") for m in at.markdown)


def test_cancel_stops_one_trial_then_the_whole_background_study(kaggle_zip, tmp_path):
    from fer_core.studies.runs import cancel_study, cancel_trial, list_runs, start_study
    from fer_core.training.jobs import pid_alive

    store, runs = tmp_path / "store", tmp_path / "runs" / "studies"
    text = GOOD.replace("[profiles.quick]\nepochs = 1", "[profiles.quick]\nepochs = 200")  # far longer than the test
    path = _write(tmp_path, text)
    study_id = start_study(path, parse_study(text, "long.toml"), "quick", str(kaggle_zip), "cpu", store, runs)
    directory, deadline = study_dir(study_id, runs), time.time() + 240

    def trials():
        return read_trials(directory)

    # a running trial says which batch it is on, not "epoch 0" for minutes
    first = _wait(lambda: next((t for t in trials().values() if t.state == "running" and t.batches), None), deadline, "a batch")
    assert first.progress().startswith(f"epoch {first.epoch + 1}")
    assert cancel_trial(study_id, first.trial, runs).state in ("cancelling", "cancelled")  # the latter if it was quick
    _wait(lambda: trials()[first.trial].state == "cancelled", deadline, "the trial to stop")
    assert read_run(directory).state == "running"  # the others go on
    with pytest.raises(ValueError, match="only a queued or running trial"):
        cancel_trial(study_id, first.trial, runs)
    _wait(lambda: any(t.state == "running" for t in trials().values()), deadline, "another trial")
    info = cancel_study(study_id, runs)
    assert info.state in ("cancelling", "cancelled")  # cancelling until the driver has seen its trials stop
    while time.time() < deadline and list_runs(runs)[0].state != "cancelled":  # the driver stops its trials
        time.sleep(0.5)
    statuses = read_trials(study_dir(study_id, runs))
    assert list_runs(runs)[0].state == "cancelled" and {s.state for s in statuses.values()} == {"cancelled"}
    assert not list_checkpoints(store)  # a cancelled trial writes nothing
    while time.time() < deadline and pid_alive(info.pid):
        time.sleep(0.5)
    assert not pid_alive(info.pid)


def test_a_study_and_a_training_job_never_share_a_device(kaggle_zip, tmp_path, monkeypatch):
    from fer_core.studies.runs import start_study
    from fer_core.training import make_config
    from fer_core.training.jobs import DeviceHolder, JobBusy, acquire_device, cancel_job, read_job, release_device, start_job

    runs = tmp_path / "runs"
    monkeypatch.setenv("FER_RUNS", str(runs))
    acquire_device("auto", DeviceHolder("study demo", "study", os.getpid()))  # this process stands in for a driver
    quick = make_config("keras_cnn", "quick", data=str(kaggle_zip), epochs=500, batch_size=4, device="cpu")
    with pytest.raises(JobBusy, match="study demo is already running on device 'cpu'"):  # 'auto' is the CPU here
        start_job(quick)
    release_device("auto", "study demo")
    job = start_job(quick)
    try:
        with pytest.raises(JobBusy, match=f"{job} is already running on device 'cpu'"):
            start_study(_write(tmp_path, GOOD), parse_study(GOOD), "quick", str(kaggle_zip), "cpu", tmp_path / "s", runs)
    finally:
        cancel_job(job)
        deadline = time.time() + 120
        while time.time() < deadline and read_job(runs / job).state in ("starting", "running"):
            time.sleep(0.5)
