"""The Streamlit app through AppTest, on fixture checkpoints and the fixture dataset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fer_core.data import load_dataset
from fer_core.evaluation import compute_metrics, evaluate_ensemble, misclassified_faces, standings
from fer_core.external import cached_results
from fer_core.leaderboard import default_ensemble
from fer_core.naming import base_name, display_names
from fer_core.records import Predictions, StudyTrial
from fer_core.store import list_checkpoints, load_predictions, meta_json, replace_test_predictions
from fer_core.training import make_config
from ui.checkpoints import SHOW_TRIALS

from .conftest import REPO, image_bytes

TIMEOUT = 120  # pages import torch and load models: far above AppTest's 3 s default


@pytest.fixture()
def app_env(monkeypatch, tiny_checkpoints, kaggle_zip, tmp_path):
    monkeypatch.setenv("FER_CHECKPOINTS", str(tiny_checkpoints))
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    monkeypatch.setenv("FER_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(REPO)
    return tiny_checkpoints


def elements(at: AppTest, *kinds: str) -> list:
    """Every element of these types on the page, in order, inside tabs and columns too."""

    def walk(node):
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    return [n for n in walk(at._tree) if getattr(n, "type", "") in kinds]


def chart_data(at: AppTest) -> list[pd.DataFrame]:
    """The data of every altair chart on the page, in order (AppTest has no typed accessor for charts)."""

    def frames(proto) -> list[pd.DataFrame]:  # the chart's own data (Predict's grid) and its named datasets
        blobs = ([proto.data.data] if proto.data.data else []) + [d.data.data for d in proto.datasets]
        return [pa.ipc.open_stream(blob).read_all().to_pandas() for blob in blobs]

    protos = [n.proto for n in elements(at, "vega_lite_chart", "arrow_vega_lite_chart")]
    return [frame for p in protos for frame in frames(p)]


def run_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "workbench.py"), default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_overview_lists_checkpoints_and_dataset(app_env):
    at = run_page()
    ids = {c.id for c in list_checkpoints(app_env)}
    table = at.dataframe[0].value
    assert set(table["id"]) == ids | {"ensemble"}  # the tiny checkpoints share classes: their default ensemble
    marks = standings({c.id: load_predictions(app_env / c.id, c.meta) for c in list_checkpoints(app_env)})
    assert set(table.loc[table["best"] == "★", "id"]) == {cid for cid, m in marks.items() if m.best_within_noise}
    assert all(table.set_index("id").loc[cid, "vs best"] == m.verdict() for cid, m in marks.items())
    assert table.set_index("id").loc["ensemble", "95% CI"]  # the ensemble's interval too
    assert any("Duplicate groups" in m.label for m in at.metric)


def _made_up_answers(correct: np.ndarray, classes: tuple[str, ...]) -> Predictions:
    labels = np.arange(len(correct)) % len(classes)
    predicted = np.where(correct, labels, (labels + 1) % len(classes))
    return Predictions(np.eye(len(classes))[predicted], labels, tuple(f"{i}.png" for i in range(len(correct))), classes)


def test_the_leaderboard_stars_every_model_within_noise_of_the_best(monkeypatch, tiny_checkpoints, kaggle_zip, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(tiny_checkpoints, store)
    monkeypatch.setenv("FER_CHECKPOINTS", str(store))
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    monkeypatch.chdir(REPO)
    first, second = (i.meta for i in list_checkpoints(store))
    correct = np.random.default_rng(0).random(2000) < 0.7

    def store_answers(best: np.ndarray, other: np.ndarray) -> pd.DataFrame:
        for meta, answers in ((first, best), (second, other)):
            made_up = _made_up_answers(answers, meta.classes)
            replace_test_predictions(meta.id, made_up, compute_metrics(made_up).headline(), store)
        return run_page().dataframe[0].value.set_index("id")

    one_face_less = correct.copy()
    one_face_less[np.flatnonzero(correct)[0]] = False  # 71.86% against 71.83%: McNemar's p = 1
    tie = store_answers(correct, one_face_less)
    assert tie.loc[[first.id, second.id], "best"].tolist() == ["★", "★"]
    assert tie.loc[second.id, "vs best"] == "within noise of the best (p 1)"
    far_behind = correct.copy()
    far_behind[np.flatnonzero(correct)[:150]] = False  # 7.5 points fewer on the same faces
    lead = store_answers(correct, far_behind)
    assert lead.loc[[first.id, second.id], "best"].tolist() == ["★", ""]
    assert lead.loc[first.id, "vs best"] == "most accurate" and lead.loc[second.id, "vs best"].startswith("behind the best")


def test_overview_and_sidebar_load_without_torch(tiny_checkpoints, kaggle_zip, tmp_path):
    """The first paint (Overview leaderboard, sidebar training form and job list) must not wait for torch,
    torchvision or kornia to import: seconds each on a small CPU, and they slowed the browser drawing the page."""
    code = (
        "import sys; import ui.page, ui.own_data_results, ui.charts, ui.training_panel; "
        "from fer_core.leaderboard import leaderboard_row; "
        "from fer_core.store import list_checkpoints; from fer_core.data import find_default_dataset; "
        "from fer_core.devices import describe_devices; from fer_core.training import make_config; "
        "from fer_core.training.jobs import list_jobs; "
        f"infos = list_checkpoints({str(tiny_checkpoints)!r}); assert infos and all(i.ok for i in infos); "
        "[leaderboard_row(i.meta) for i in infos]; assert find_default_dataset(); describe_devices(); "
        f"make_config('keras_cnn', 'custom', data={str(kaggle_zip)!r}, epochs=1); list_jobs({str(tmp_path)!r}); "
        "print(sorted(m for m in ('torch', 'torchvision', 'sklearn', 'scipy', 'kornia', 'timm') if m in sys.modules))"
    )
    env = {**os.environ, "FER_DATA": str(kaggle_zip)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_overview_empty_state(monkeypatch, tmp_path, kaggle_zip):
    monkeypatch.setenv("FER_CHECKPOINTS", str(tmp_path / "none"))
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    at = run_page()
    assert any("No trained checkpoints yet" in i.value for i in at.info)


def test_predict_shows_every_model(app_env, grace_hopper):
    at = run_page("app_pages/predict.py")
    at.file_uploader[0].set_value(
        [("hopper.jpg", grace_hopper.read_bytes(), "image/jpeg"), ("notes.txt", b"definitely not an image", "text/plain")]
    )
    at.run()
    assert not at.exception
    names = display_names(c.meta for c in list_checkpoints(app_env) if c.meta)
    members = next(m for m in at.multiselect if m.label == "Members")
    for picker in (members, next(m for m in at.multiselect if m.label == "Models")):  # ids on hover of the help
        assert all(f"{name}: `{cid}`" in picker.help for cid, name in names.items())
    at = members.set_value(sorted(names)).run()  # both tiny models in the ensemble, whatever their accuracy
    grid = chart_data(at)[0]  # the face's probability grid: one row per model (short names) and one for the ensemble
    assert set(grid["model"]) == set(names.values()) | {f"ensemble (mean of {len(names)})"}
    assert any("notes.txt" in e.value and "not an image" in e.value for e in at.error)
    at = next(m for m in at.multiselect if m.label == "Members").set_value([]).run()
    assert set(chart_data(at)[0]["model"]) == set(names.values())  # no ensemble chosen: no ensemble row


def test_study_trials_stay_out_of_the_pickers_until_the_sidebar_shows_them(monkeypatch, tiny_checkpoints, kaggle_zip, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(tiny_checkpoints, store)
    monkeypatch.setenv("FER_CHECKPOINTS", str(store))
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    monkeypatch.chdir(REPO)
    own = [i.meta for i in list_checkpoints(store)]
    trial_id = "architectures-quick-20261204-081926-p00-s0"
    shutil.copytree(store / own[0].id, store / trial_id)
    trial = replace(
        own[0], id=trial_id, study=StudyTrial("architectures-quick-20261204-081926", "architectures", "quick", "p00-s0", {}, 0)
    )
    (store / trial_id / "meta.json").write_text(meta_json(trial))
    names = display_names([*own, trial])  # the trial is told apart by its trial id; the others keep their names
    assert names[own[0].id] == base_name(own[0]) and names[trial_id] == f"{base_name(own[0])} · p00-s0"
    at = run_page()
    assert set(at.dataframe[0].value["id"]) == {m.id for m in own} | {"ensemble"}  # no trial on the leaderboard
    assert "ensemble (mean of 2)" in set(at.dataframe[0].value["model"])
    with_trials = at.toggle(key=SHOW_TRIALS).set_value(True).run()
    assert "ensemble (mean of 3)" in set(with_trials.dataframe[0].value["model"])  # the line follows the toggle
    predict = run_page("app_pages/predict.py")
    models = next(m for m in predict.multiselect if m.label == "Models")
    assert names[trial_id] not in models.options and models.value == default_ensemble(own)  # the leaderboard's ensemble
    shown = predict.toggle(key=SHOW_TRIALS).set_value(True).run()
    models = next(m for m in shown.multiselect if m.label == "Models")
    assert names[trial_id] in models.options and trial_id not in models.value
    assert f"{names[trial_id]}: `{trial_id}`" in models.help


def test_predict_camera_opens_on_request_below_the_results(app_env, grace_hopper):
    at = run_page("app_pages/predict.py")
    assert not at.camera_input  # results first: the camera only when asked for
    at = at.toggle[0].set_value(True).run()
    at.camera_input[0].set_value(("snapshot.jpg", grace_hopper.read_bytes(), "image/jpeg"))
    at.run()
    assert not at.exception
    assert any("camera snapshot" in s.value for s in at.subheader)
    assert any("1 face(s) found" in c.value and "first processed" in c.value for c in at.caption)


def test_predict_says_first_when_there_is_no_face(app_env):
    at = run_page("app_pages/predict.py")
    beige = np.full((800, 800, 3), (225, 205, 170), np.uint8)
    at.file_uploader[0].set_value([("beige.png", image_bytes(beige), "image/png")])
    at.run()
    assert not at.exception
    assert any(w.value.startswith("No face found in beige.png") for w in at.warning)
    assert not any("disagree" in w.value for w in at.warning)  # votes about a non-face are not a disagreement
    assert any("**Whole image** (no face)" in m.value for m in at.markdown)


def test_explain_renders_and_a_rerun_recomputes_nothing(app_env, monkeypatch):
    import fer_core.explain as explain

    calls: list[str] = []

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)

        return wrapper

    for name, method in list(explain.METHODS.items()):
        monkeypatch.setitem(explain.METHODS, name, counted(name, method))
    monkeypatch.setattr(explain, "feature_maps", counted("feature maps", explain.feature_maps))
    st.cache_data.clear()  # explanations cached by an earlier test would hide the first computation
    at = run_page("app_pages/explain.py")
    assert any("Grad-CAM" in s.value for s in at.subheader)
    assert any("Feature maps" in s.value for s in at.subheader)
    assert len(at.get("image")) >= 4  # the face, Grad-CAM, IG and feature maps
    assert {"Grad-CAM", "Integrated Gradients", "feature maps"} <= set(calls)
    before = len(calls)
    at.run()
    assert not at.exception and len(calls) == before  # everything came from the cache


def test_evaluate_renders(app_env):
    at = run_page("app_pages/evaluate.py")
    assert any(m.label == "accuracy" for m in at.metric)
    assert any("McNemar" in md.value for md in at.markdown)
    at.selectbox(key="b").set_value(at.selectbox(key="a").value).run()  # one checkpoint against itself: no test
    assert any("the same checkpoint" in i.value for i in at.info)
    assert not any("McNemar's test**" in m.value for m in at.markdown)
    shown = max(list_checkpoints(app_env), key=lambda c: c.meta.test_metrics.accuracy)  # "One model" opens on the best
    stored = load_predictions(shown.path)
    wrong = int((stored.predicted != stored.labels).sum())
    assert any(c.value.startswith(f"{wrong} misclassified faces match") for c in at.caption)
    report = next(d.value for d in at.dataframe if "support" in d.value.columns)
    assert "accuracy" not in report.index and "macro avg" in report.index  # no "support 1" row of a bare number
    infos = list_checkpoints(app_env)  # the Ensemble tab: the default ensemble preselected, figures from fer_core
    members = next(m for m in at.multiselect if m.label.startswith("Members"))
    assert members.value == default_ensemble(c.meta for c in infos)
    at = members.set_value([c.id for c in infos]).run()
    expected = evaluate_ensemble({c.id: load_predictions(c.path) for c in infos}).metrics.accuracy
    assert next(m for m in at.metric if m.label == "ensemble accuracy").value == f"{expected:.2%}"
    for info in infos:  # choosing a model shows its own mistakes, faces and captions from fer_core
        at.selectbox(key="one").set_value(info.id).run()
        _, mistakes = misclassified_faces(load_predictions(info.path), load_dataset(os.environ["FER_DATA"]), limit=40)
        shown = [img.caption for element in at.get("image") for img in element.proto.imgs]
        assert shown == [f"{i}: {m.true_class}→{m.predicted_class} {m.confidence:.0%}" for i, m in enumerate(mistakes, 1)]
    next(b for b in at.button if b.label.startswith("Compute t-SNE")).click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Hover a point" in c.value for c in at.caption)
    at.toggle(key="norm-one").set_value(False).run()  # another control's rerun keeps the t-SNE drawn
    assert any("Hover a point" in c.value for c in at.caption)


def test_evaluate_never_ranks_two_label_sets_in_one_table(monkeypatch, kaggle_zip):
    monkeypatch.setenv("FER_CHECKPOINTS", str(REPO / "checkpoints"))  # nine FER2013 models and one FER+ model
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    monkeypatch.chdir(REPO)
    at = run_page("app_pages/evaluate.py")
    tables = [d.value for d in at.dataframe if {"vs best", "n"} <= set(d.value.columns)]  # All models' tables
    by_labels = {i.id: i.meta.data.label_source for i in list_checkpoints(REPO / "checkpoints")}
    assert sorted({by_labels[cid] for cid in t["id"]} for t in tables) == [{"fer2013"}, {"ferplus"}]
    assert any("never ranked together" in c.value for c in at.caption)


def test_sidebar_offers_only_checkpoints_of_the_chosen_label_source(monkeypatch, kaggle_zip, tmp_path):
    """A teacher or start point with other labels would fail the job after submit: it is not offered at all."""
    monkeypatch.setenv("FER_CHECKPOINTS", str(REPO / "checkpoints"))
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    monkeypatch.setenv("FER_RUNS", str(tmp_path / "runs"))
    infos = list_checkpoints(REPO / "checkpoints")
    by_source: dict[str, set[str]] = {}
    for c in infos:
        by_source.setdefault(c.meta.data.label_source, set()).add(c.id)
    assert {"fer2013", "ferplus"} <= set(by_source)
    accuracy = {c.id: c.meta.accuracy for c in infos}
    names = display_names(c.meta for c in infos if c.meta)  # what the app shows instead of ids
    at = run_page()
    offered = at.multiselect(key="train_teachers-fer2013").options
    assert set(offered) == {f"{names[cid]} ({accuracy[cid]:.1%})" for cid in by_source["fer2013"]}
    at.selectbox(key="train_model").set_value("keras_cnn_wide")
    at.selectbox(key="train_labels").set_value("ferplus")
    at.run()
    assert not at.exception
    ferplus = sorted(by_source["ferplus"])
    assert at.multiselect(key="train_teachers-ferplus").options == [f"{names[c]} ({accuracy[c]:.1%})" for c in ferplus]
    assert at.selectbox(key="train_init-keras_cnn_wide-ferplus").options[1:] == [
        f"{names[c]} ({accuracy[c]:.1%})" for c in ferplus
    ]


def test_sidebar_trains_any_timm_model_searched_by_name(monkeypatch, tmp_path, kaggle_zip):
    """The architecture picker's timm entry: a searchable list of timm's models and an input size; a model that cannot
    take the size says which it needs, in the sidebar, and the page keeps working."""
    monkeypatch.setenv("FER_CHECKPOINTS", str(tmp_path / "store"))
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    monkeypatch.setenv("FER_RUNS", str(tmp_path / "runs"))
    at = run_page()
    at.selectbox(key="train_model").set_value("timm:")
    at.run()
    assert "convnext_atto" in at.selectbox(key="train_timm").options and at.selectbox(key="train_timm").value is None
    at.selectbox(key="train_timm").set_value("inception_resnet_v2")
    at.run()
    assert not at.exception
    assert any("needs at least 75 px" in e.value for e in at.sidebar.error)
    at.number_input(key="train_timm_size").set_value(75)
    at.run()
    assert not at.exception and not at.sidebar.error
    assert any("inception_resnet_v2 as timm builds it" in c.value for c in at.sidebar.caption)
    assert at.selectbox(key="train_preset-timm:inception_resnet_v2@75-False").value == "timm"


def test_sidebar_says_where_a_run_saved_to_another_store_went(monkeypatch, tmp_path, kaggle_zip):
    """A CLI run with --checkpoints elsewhere: its checkpoint is not in the app's store, and not deleted either."""
    other, job = tmp_path / "other", tmp_path / "runs" / "job-1"
    (other / "keras_cnn-fer2013-1").mkdir(parents=True)
    job.mkdir(parents=True)
    status = {"state": "succeeded", "pid": None, "message": "done", "checkpoint": "keras_cnn-fer2013-1", "store": str(other)}
    (job / "status.json").write_text(json.dumps(status))
    monkeypatch.setenv("FER_CHECKPOINTS", str(tmp_path / "store"))
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    monkeypatch.setenv("FER_RUNS", str(tmp_path / "runs"))
    assert any(f"saved to another store, {other}" in c.value for c in run_page().caption)
    shutil.rmtree(other)
    assert any("has since been deleted" in c.value for c in run_page().caption)


def test_training_from_the_sidebar_lands_a_checkpoint(monkeypatch, tmp_path, kaggle_zip):
    store = tmp_path / "store"
    monkeypatch.setenv("FER_CHECKPOINTS", str(store))
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    monkeypatch.setenv("FER_RUNS", str(tmp_path / "runs"))
    at = run_page()
    at.selectbox(key="train_preset-keras_cnn-False").set_value("quick")
    at.run()
    assert at.number_input(key="train_epochs-quick").value == 3  # the form follows the chosen recipe
    at.number_input(key="train_epochs-quick").set_value(1)
    at.number_input(key="train_batch-quick").set_value(8)
    at.selectbox(key="train_device").set_value("cpu")
    at.number_input(key="train_budget-quick").set_value(5.0)
    at.selectbox(key="train_precision-quick").set_value("bf16")
    at.sidebar.button[0].click()
    at.run()
    assert not at.exception
    deadline = time.time() + 300
    while time.time() < deadline and not list_checkpoints(store):
        time.sleep(2)
    assert list_checkpoints(store), "the background job did not write a checkpoint"
    at.run()
    assert not at.exception
    assert set(at.dataframe[0].value["id"]) == {c.id for c in list_checkpoints(store)}
    config = list_checkpoints(store)[0].meta.config
    assert config.time_budget_min == 5.0 and config.scheduler == "cosine" and config.train_fraction == 1.0
    assert config.precision == "bf16"
    reloaded = run_page()  # a new browser session: the form opens on the last run's settings, not the defaults
    assert reloaded.selectbox(key="train_model").value == "keras_cnn"
    assert reloaded.selectbox(key="train_preset-keras_cnn-False").value == "last"
    assert reloaded.number_input(key="train_epochs-last").value == 1
    assert reloaded.number_input(key="train_batch-last").value == 8
    assert reloaded.number_input(key="train_budget-last").value == 5.0
    assert reloaded.selectbox(key="train_precision-last").value == "bf16"
    reloaded.selectbox(key="train_preset-keras_cnn-False").set_value("custom").run()
    recipe = make_config("keras_cnn", "custom")  # a preset chosen after a run starts from its recipe, not the run
    assert reloaded.number_input(key="train_epochs-custom").value == recipe.epochs
    assert reloaded.number_input(key="train_budget-custom").value == 0.0
    assert reloaded.selectbox(key="train_precision-custom").value == recipe.precision

    first = list_checkpoints(store)[0].id  # a second run that starts from it and distils from it
    at.selectbox(key="train_init-keras_cnn-fer2013").set_value(first)
    at.multiselect(key="train_teachers-fer2013").set_value([first])
    at.sidebar.button[0].click()
    at.run()
    assert not at.exception
    deadline = time.time() + 300
    while time.time() < deadline and len(list_checkpoints(store)) < 2:
        time.sleep(2)
    second = next((c for c in list_checkpoints(store) if c.id != first), None)
    assert second is not None, "the distillation job did not write a checkpoint"
    assert second.meta.init_from.id == first and [t.id for t in second.meta.teachers] == [first]


def test_evaluate_downloads_a_checkpoint_and_its_onnx_export(app_env):
    import io
    import zipfile

    from fer_core.export import Sidecar

    at = run_page("app_pages/evaluate.py")
    cid = at.selectbox(key="one").value
    downloads = [e for e in at.get("download_button") if "checkpoint" in e.proto.label]
    assert downloads, "no checkpoint download on Evaluate"
    at.button(key=f"onnx-{cid}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [onnx] = [e for e in at.get("download_button") if "ONNX" in e.proto.label]
    from ui import checkpoints

    with zipfile.ZipFile(io.BytesIO(checkpoints.onnx_package(cid))) as zf:  # the bytes the button serves (cached)
        names = sorted(zf.namelist())
        sidecar = Sidecar.from_json(zf.read(f"{cid}-onnx/model.json").decode(), "zip")
    assert names == [f"{cid}-onnx/model.json", f"{cid}-onnx/model.onnx"] and sidecar.checkpoint_id == cid
    assert sidecar.parity.max_abs_diff <= 1e-4
    with zipfile.ZipFile(io.BytesIO(checkpoints.checkpoint_package(cid))) as zf:
        assert {n.split("/")[1] for n in zf.namelist()} == {
            "model.safetensors",
            "meta.json",
            "predictions.safetensors",
            "MODEL_CARD.md",
        }


def test_predict_runs_each_model_on_the_backend_measured_faster(app_env, grace_hopper):
    at = run_page("app_pages/predict.py")
    at.button(key="measure_backends").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    measured = at.dataframe[0].value
    assert set(measured["model"]) == set(display_names(c.meta for c in list_checkpoints(app_env) if c.meta).values())
    assert set(measured["runs on"]) <= {"torch", "onnxruntime"} and (measured["PyTorch ms"] > 0).all()
    at.file_uploader[0].set_value([("hopper.jpg", grace_hopper.read_bytes(), "image/jpeg")])
    at.run()
    assert not at.exception
    faster = int((measured["runs on"] == "onnxruntime").sum())
    assert any(e.label.startswith(f"Backends: ONNX Runtime for {faster} of") for e in at.expander)
    grid = chart_data(at)[0]
    assert set(grid["model"]) >= set(measured["model"])


@pytest.mark.parametrize("page", ["app_pages/predict.py", "app_pages/explain.py", "app_pages/studies.py"])
def test_a_page_that_ends_early_still_draws_the_sidebar(app_env, page):
    """Predict before an upload (and the others in their empty states) end early; the glossary and the training
    panel, drawn after the page, must still be there (st.stop() would have dropped them)."""
    at = run_page(page)
    assert not at.exception
    assert [h.value for h in at.sidebar.header] == ["Train a model"]
    assert any(e.label == "Glossary" for e in at.sidebar.expander)


def test_own_data_is_evaluated_from_evaluate_and_shown_on_the_leaderboard(
    monkeypatch, tiny_checkpoints, kaggle_zip, tmp_path, own_dataset
):
    store = tmp_path / "store"
    shutil.copytree(tiny_checkpoints, store)
    monkeypatch.setenv("FER_CHECKPOINTS", str(store))
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    monkeypatch.chdir(REPO)
    at = run_page("app_pages/evaluate.py")
    assert any("No dataset of yours" in i.value for i in at.info)
    at.radio(key="own_from").set_value("a path on this machine").run()
    at.text_input(key="own_path").set_value(str(own_dataset)).run()
    n = len(list_checkpoints(store))  # before anything runs: which models lack a class of the data
    assert any(f"**contempt** is not a class of {n} of the {n} models" in c.value for c in at.caption)
    at.button(key="own_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    fingerprint = at.selectbox(key="own_dataset").value
    infos = list_checkpoints(store)
    results = cached_results(fingerprint, store)
    assert set(results) == {i.id for i in infos}  # every model ran and was cached
    table = next(d.value for d in at.dataframe if "what it covers" in d.value.columns)
    expected = {display_names(i.meta for i in infos)[cid]: 100 * r.predictions.accuracy for cid, r in results.items()}
    ensemble = evaluate_ensemble({cid: r.predictions for cid, r in results.items()})  # both are the default members
    expected["ensemble (mean of 2)"] = 100 * ensemble.metrics.accuracy
    assert dict(zip(table["model"], table["accuracy"], strict=True)) == pytest.approx(expected)
    marks = standings({cid: r.predictions for cid, r in results.items()})
    assert set(table.loc[table["best"] == "★", "id"]) == {cid for cid, m in marks.items() if m.best_within_noise}
    assert any("on ckplus: accuracy on the 5 shared classes" in c.value for c in at.caption)
    overview = run_page()
    board = overview.dataframe[0].value
    own_column = "ckplus"  # by its name: no other dataset of that name
    shown = dict(zip(board["id"], board[own_column], strict=True))
    assert all(shown[cid] == pytest.approx(100 * r.predictions.accuracy) for cid, r in results.items())
    assert shown["ensemble"] == pytest.approx(100 * ensemble.metrics.accuracy)  # the ensemble on the user's data too
    failures = run_page("app_pages/failures.py")  # cleanlab's flags on the user's dataset, from the cached predictions
    flagger = failures.selectbox(key="flagger").value
    assert failures.selectbox(key="own-flags").value == fingerprint
    faces = len(results[flagger].predictions.labels)
    assert any("ckplus**: " in m.value and f"of {faces} faces flagged" in m.value for m in failures.markdown)


def test_learning_curves_of_many_runs_are_panels_on_shared_axes():
    from fer_core.records import EpochStats
    from ui.charts import training_curve_panels

    def history(accs: list[float]) -> list[EpochStats]:
        return [EpochStats(e, len(accs), 1.0, a, 1.0, a + 0.05, 0.01, 100.0, 1.0, e * 1.0) for e, a in enumerate(accs, 1)]

    runs = {"a": history([0.2, 0.4]), "b": history([0.3, 0.6, 0.7]), "c": history([0.1]), "d": history([0.5])}
    specs = [panel.to_dict() for panel in training_curve_panels(runs, "acc")]
    assert [s["title"]["text"] for s in specs] == list(runs)  # one panel per run, in order
    assert {tuple(s["encoding"]["y"]["scale"]["domain"]) for s in specs} == {(0.1, 0.75)}  # every value of every run
    assert {tuple(s["encoding"]["x"]["scale"]["domain"]) for s in specs} == {(1, 3)}
    one_epoch = training_curve_panels({"c": history([0.1])}, "acc")[0].to_dict()
    assert one_epoch["encoding"]["x"]["scale"]["domain"] == [0.5, 1.5]  # Vega draws no axis on a zero-width domain


def test_the_app_listens_on_this_machine_only_unless_told():
    import tomllib

    server = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())["server"]
    assert server["address"] == "127.0.0.1"  # training, server paths and deletes are not offered to the network


def test_own_data_from_an_uploaded_zip_and_its_temporary_copy_goes_with_the_upload(
    monkeypatch, tiny_checkpoints, kaggle_zip, tmp_path, own_dataset
):
    store, archive = tmp_path / "store", tmp_path / "ckplus.zip"
    shutil.copytree(tiny_checkpoints, store)
    shutil.make_archive(str(archive.with_suffix("")), "zip", own_dataset)
    monkeypatch.setenv("FER_CHECKPOINTS", str(store))
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    monkeypatch.chdir(REPO)
    at = run_page("app_pages/evaluate.py")
    at.file_uploader[0].set_value([(archive.name, archive.read_bytes(), "application/zip")]).run()
    at.button(key="own_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("on ckplus: accuracy on the 5 shared classes" in c.value for c in at.caption)
    copy = Path(at.session_state["own_data_upload"][1])
    assert copy.read_bytes() == archive.read_bytes()
    at.file_uploader[0].set_value([]).run()  # the user removes the upload: its copy on the server goes
    assert not copy.parent.exists() and not at.exception


def test_the_probability_grid_is_one_valid_chart_over_its_own_cells():
    """Predict fills a cached layout with each face's cells: every layer must read those cells and nothing else
    (a layout built from an empty Altair chart drew a phantom 'undefined' row over an 'empty' dataset)."""
    import altair as alt

    from ui.charts import GRID_DATA
    from ui.photos import probability_grid_spec

    seven = dict.fromkeys(["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"], 1 / 7)
    spec = probability_grid_spec({"a · FER2013": seven, "b · FER+": seven | {"contempt": 0.0}})
    alt.LayerChart.from_dict(spec)  # a valid Vega-Lite spec
    assert spec["data"] == {"name": GRID_DATA} and set(spec["datasets"]) == {GRID_DATA}
    assert all("data" not in layer for layer in spec["layer"])
    cells = spec["datasets"][GRID_DATA]
    assert len(cells) == 15 and {c["model"] for c in cells} == {"a · FER2013", "b · FER+"}


def test_failures_page_label_noise_robustness_and_class_maps(monkeypatch, tiny_checkpoints, kaggle_zip, ferplus_dir, tmp_path):
    from fer_core.failures.label_noise import find_crowd_votes, label_noise
    from fer_core.failures.robustness import cached_run, conditions
    from ui import failures

    store = tmp_path / "store"
    shutil.copytree(tiny_checkpoints, store)
    monkeypatch.setenv("FER_CHECKPOINTS", str(store))
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))  # nothing computed yet for these weights
    monkeypatch.chdir(REPO)
    infos = list_checkpoints(store)
    at = run_page("app_pages/failures.py")
    table = at.dataframe[0].value
    assert len(table) == len(infos) + 1  # each model and their ensemble
    for info in infos:
        expected = label_noise(
            info.id, load_predictions(info.path), find_crowd_votes(kaggle_zip, load_predictions(info.path).names)
        )
        assert table.loc[table["model"] == display_names([i.meta for i in infos])[info.id], "errors"].item() == expected.errors

    start = next(b for b in at.button if b.key == "start-robustness")
    start.click().run()
    assert failures.job("robustness").wait(TIMEOUT) and not failures.job("robustness").status().errors
    keys = conditions(severities=(1, 3, 5))
    assert all(cached_run(i.path, i.meta, keys) is not None for i in infos)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    ranking = at.dataframe[2].value
    assert set(ranking["id"]) == {i.id for i in infos} and ranking["mean corrupted accuracy"].between(0, 1).all()
    at.toggle(key="robust-ensemble").set_value(True).run()
    at.selectbox(key="robust-one").set_value("ensemble").run()
    assert not at.exception, [e.message for e in at.exception]
    assert f"ensemble of {len(infos)}" in at.dataframe[2].value["model"].tolist()

    start = next(b for b in at.button if b.key == "start-saliency")
    start.click().run()
    assert failures.job("saliency").wait(TIMEOUT) and not failures.job("saliency").status().errors
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    captions = [image.caption for element in elements(at, "image") for image in element.proto.imgs]
    # per class and model: the map over right faces, over wrong faces, and the region costs
    assert len(captions) == 3 * sum(len(i.meta.classes) for i in infos)
    assert sum("(up to " in c for c in captions) == sum(len(i.meta.classes) for i in infos)


def test_failures_page_without_crowd_votes_says_where_to_put_them_and_still_flags(
    monkeypatch, tiny_checkpoints, kaggle_zip, tmp_path
):
    alone = tmp_path / "alone" / "fer2013.zip"
    alone.parent.mkdir()
    shutil.copy(kaggle_zip, alone)  # no ferplus/ folder beside it
    monkeypatch.setenv("FER_CHECKPOINTS", str(tiny_checkpoints))
    monkeypatch.setenv("FER_DATA", str(alone))
    monkeypatch.chdir(REPO)
    at = run_page("app_pages/failures.py")
    assert any("fer2013new.csv" in w.value for w in at.warning)
    assert any("cleanlab" in s.value for s in at.subheader)
    assert any("test faces flagged" in c.value for c in at.caption)
