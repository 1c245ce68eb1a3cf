"""Every CLI command end to end, in a subprocess as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import timm

from fer_core.models import list_models
from fer_core.store import list_checkpoints, load_predictions

from .conftest import FER2013_ZIP, REPO


def cli(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "fer_core", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_help_for_every_command(capsys):
    from fer_core.__main__ import build_parser

    parser = build_parser()
    for command in ("models", "data", "train", "evaluate", "predict", "checkpoints"):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0
        assert "--json" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["study", "status"], ["checkpoints"], ["predict", "--help"]])
def test_commands_that_need_no_model_do_not_import_torch(command, tiny_checkpoints, tmp_path):
    """Parsing, listing and following studies answer in a fraction of a second: torch (~1 s), scipy and
    scikit-learn (~0.8 s) load only in the commands that compute."""
    check = (
        "import sys; from fer_core.__main__ import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'scipy', 'sklearn') if m in sys.modules), file=sys.stderr)"
    )
    args = [*command, *([] if "--help" in command else ["--checkpoints", str(tiny_checkpoints)])]
    args += ["--runs", str(tmp_path)] if command[0] == "study" else []
    proc = subprocess.run([sys.executable, "-c", check, *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr


def test_models_json_lists_the_registry():
    rows = json.loads(cli("models", "--json").stdout)
    assert [r["name"] for r in rows] == [s.name for s in list_models()]
    assert all(r["parameters"] > 0 and r["gradcam_layer"] for r in rows)
    text = cli("models").stdout
    assert "not registered: NASNet-A Mobile: no maintained implementation" in text and "timm:<name>" in text
    assert json.loads(cli("models", "--timm", "convnext_at*", "--json").stdout) == [
        "convnext_atto",
        "convnext_atto_ols",
        "convnext_atto_rms",
    ]


@pytest.mark.parametrize(
    "model, message",
    [
        (
            ["--model", "timm:convnext_atom"],
            f"error: timm {timm.__version__} has no model 'convnext_atom'; close: convnext_atto, ",
        ),
        (
            ["--model", "timm:inception_resnet_v2"],
            "it needs at least 75 px; ask for timm:inception_resnet_v2@75 (--input-size 75)",
        ),
        (["--model", "keras_cnn", "--input-size", "64"], "error: --input-size: only timm:<name> models take one"),
    ],
)
def test_timm_models_that_cannot_be_built_fail_in_one_line(model, message, kaggle_zip):
    proc = cli("train", *model, "--data", kaggle_zip, check=False)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_data_summary(kaggle_zip):
    out = cli("data", kaggle_zip).stdout
    assert "official FER2013 usage" in out and "duplicate" in out
    summary = json.loads(cli("data", kaggle_zip, "--json").stdout)
    assert summary["split_sizes"] == {"train": 21, "val": 7, "test": 7}


def test_train_evaluate_checkpoints_predict(kaggle_zip, tmp_path, grace_hopper):
    store = tmp_path / "ck"
    quick = ["train", "--model", "keras_cnn", "--data", kaggle_zip, "--preset", "quick", "--epochs", "1"]
    quick += ["--batch-size", "8", "--device", "cpu", "--no-efficiency"]
    trained = json.loads(cli(*quick, "--checkpoints", store, "--json").stdout)
    cid = trained["checkpoint"]
    assert (store / cid / "model.safetensors").is_file()
    students = tmp_path / "students"  # teachers given as folders of another store
    distilled = cli(*quick, "--checkpoints", students, "--init-from", store / cid, "--teachers", store / cid).stdout
    assert "1 teacher(s) predicting the training faces" in distilled and "epoch 1/1  train loss" in distilled
    [student] = list_checkpoints(students)
    assert student.meta.init_from.id == cid and student.meta.teachers[0].id == cid

    listed = json.loads(cli("checkpoints", "--checkpoints", store, "--json").stdout)
    assert [r["id"] for r in listed] == [cid] and listed[0]["mmacs"] is None  # trained with --no-efficiency
    annotated = json.loads(
        cli("checkpoints", "--checkpoints", store, "--card", cid, "Two-epoch test model.", "--measure", "--json").stdout
    )
    assert annotated[0]["card"] == "Two-epoch test model." and annotated[0]["mmacs"] > 0
    assert annotated[0]["cpu_latency_ms"] > 0 and annotated[0]["test_accuracy"] == listed[0]["test_accuracy"]

    stored = json.loads(cli("evaluate", "--checkpoint", cid, "--checkpoints", store, "--json").stdout)
    assert stored["metrics"]["accuracy"] == pytest.approx(trained["test_metrics"]["accuracy"])
    rerun = json.loads(cli("evaluate", "--checkpoint", cid, "--checkpoints", store, "--data", kaggle_zip, "--json").stdout)
    assert rerun["metrics"]["n"] == 7
    tta = json.loads(
        cli("evaluate", "--checkpoint", cid, "--checkpoints", store, "--data", kaggle_zip, "--tta", "flip", "--json").stdout
    )
    assert "TTA flip" in tta["source"]
    val = json.loads(
        cli("evaluate", "--checkpoint", cid, "--checkpoints", store, "--data", kaggle_zip, "--split", "val", "--json").stdout
    )
    assert val["split"] == "val"
    ens = json.loads(cli("evaluate", "--ensemble", f"{cid},{students / student.id}", "--checkpoints", store, "--json").stdout)
    a, b = load_predictions(store / cid), load_predictions(students / student.id)
    mean_correct = ((a.probs + b.probs).argmax(1) == a.labels).mean()
    assert ens["metrics"]["n"] == 7 and ens["metrics"]["accuracy"] == pytest.approx(mean_correct)
    assert "at least two" in cli("evaluate", "--ensemble", f"{cid},{cid}", "--checkpoints", store, check=False).stderr

    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    result = json.loads(cli("predict", grace_hopper, bad, "--checkpoints", store, "--json").stdout)
    good, broken = result["images"]
    assert good["error"] is None and len(good["faces"]) == 1 and good["faces"][0]["detected"] is True
    pred = good["faces"][0]["predictions"][cid]
    assert pred["label"] in pred["probabilities"] and sum(pred["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert len(good["faces"][0]["box"]) == 4
    assert broken["error"] and broken["faces"] == []
    text = cli("predict", grace_hopper, "--checkpoints", store, "--detector", "haar").stdout
    assert "1 face(s)" in text and cid in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--model", "nope", "--data", "x"], "unknown model"),
        (["data", "/definitely/missing.zip"], "no such file"),
        (["evaluate", "--checkpoint", "../../etc"], "no checkpoint"),
        (["evaluate", "--checkpoint", "missing-id"], "no checkpoint"),
        (["train", "--epochs", "many"], "invalid int"),
        (["train", "--model", "keras_cnn", "--data", "/definitely/missing.zip"], "no such file"),
        (["train", "--model", "keras_cnn", "--data", "README.md"], "use a Kaggle .zip"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_errors_are_one_line_without_traceback(args, message, tmp_path):
    proc = cli(*args, check=False, env={"FER_CHECKPOINTS": str(tmp_path / "store"), "FER_RUNS": str(tmp_path / "runs")})
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1  # no progress bar drawn before the error
    assert not (tmp_path / "runs").exists()  # nor a failed run left for the sidebar to list and reopen on


def test_debug_shows_the_traceback_of_an_error(tmp_path, grace_hopper):
    proc = cli("--debug", "predict", grace_hopper, "--models", "no-such-id", check=False, env={"FER_CHECKPOINTS": str(tmp_path)})
    assert proc.returncode != 0 and "Traceback (most recent call last)" in proc.stderr and "no-such-id" in proc.stderr


def test_predict_without_checkpoints_says_how_to_train(tmp_path, grace_hopper):
    proc = cli("predict", grace_hopper, check=False, env={"FER_CHECKPOINTS": str(tmp_path)})
    assert proc.returncode == 1 and "train" in proc.stderr


@pytest.mark.skipif(not FER2013_ZIP.is_file(), reason="../shared/data is not present")
def test_data_on_real_fer2013():
    out = cli("data", FER2013_ZIP).stdout
    assert "28709" in out.replace(",", "") or "7215" in out
    summary = json.loads(cli("data", FER2013_ZIP, "--json").stdout)
    assert summary["split_sizes"] == {"train": 28709, "val": 3589, "test": 3589}


def test_rederive_recomputes_stored_predictions_from_the_saved_weights(tiny_checkpoints, kaggle_zip, fer2013_csv, tmp_path):
    from dataclasses import replace

    import numpy as np

    from fer_core.evaluation import compute_metrics
    from fer_core.store import read_meta, replace_test_predictions

    store = tmp_path / "store"
    shutil.copytree(tiny_checkpoints, store)
    info = list_checkpoints(store)[0]
    good = load_predictions(info.path)
    wrong = replace(good, probs=np.roll(good.probs, 1, axis=1))  # stored figures that do not match the weights
    replace_test_predictions(info.id, wrong, compute_metrics(wrong).headline(), store)
    before = read_meta(info.path)
    stored = {c.id: (c.path / "predictions.safetensors").read_bytes() for c in list_checkpoints(store)}
    refused = cli("checkpoints", "--checkpoints", store, "--rederive", fer2013_csv, check=False)  # other pixels
    assert refused.returncode == 1 and "other data" in refused.stderr and read_meta(info.path) == before
    assert {c.id: (c.path / "predictions.safetensors").read_bytes() for c in list_checkpoints(store)} == stored
    out = cli("checkpoints", "--checkpoints", store, "--rederive", kaggle_zip)
    again = load_predictions(info.path)
    assert np.allclose(again.probs, good.probs, rtol=0, atol=1e-6) and again.names == good.names
    assert read_meta(info.path).test_metrics == compute_metrics(again).headline()
    assert f"{info.id}" in out.stderr and f"accuracy {before.test_metrics.accuracy:.4f} -> " in out.stderr
