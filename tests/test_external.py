"""Evaluation on a user's own labelled data: reading, class matching, face crops, shared-class metrics, cache, CLI."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fer_core.__main__ import main
from fer_core.classifier import FerClassifier, load_checkpoint
from fer_core.data import DataError
from fer_core.evaluation import compute_metrics
from fer_core.external import (
    IGNORE,
    cached_datasets,
    cached_results,
    default_mapping,
    evaluate_checkpoints,
    evaluate_external,
    external_root,
    load_external,
    parse_mapping,
)
from fer_core.store import list_checkpoints


def test_labels_match_through_the_aliases_and_the_rest_is_left_out_and_reported(own_dataset):
    data = load_external(own_dataset)
    assert data.mapping["anger"] == "angry" and data.mapping["happiness"] == "happy" and data.mapping["sadness"] == "sad"
    assert data.mapping["posed_other"] == IGNORE and data.left_out == {"posed_other": 3}
    assert data.classes == ("angry", "disgust", "happy", "sad", "surprise", "contempt")  # six, contempt, no neutral
    assert data.counts() == {"angry": 3, "disgust": 3, "happy": 5, "sad": 3, "surprise": 3, "contempt": 3}
    assert len(data.unreadable) == 1 and "broken.png" in data.unreadable[0]  # reported, not silently dropped
    assert data.images.shape == (20, 48, 48) and data.images.dtype == np.uint8


def test_large_images_are_cropped_to_the_detected_face_small_ones_used_whole(own_dataset):
    data = load_external(own_dataset)
    assert data.detected == 2 and data.whole == 18 and data.no_face == 0  # the two photos; 48 and 96 px crops whole
    photo = data.names.index("happiness/photo_0.jpg")
    assert data.images[photo].std() > 20  # a face with contrast, not a resized blank corner


def test_a_mapping_overrides_the_aliases_and_changes_the_fingerprint(own_dataset):
    default = load_external(own_dataset)
    mapped = load_external(own_dataset, parse_mapping("posed_other=neutral, contempt=ignore"))
    assert "neutral" in mapped.classes and "contempt" not in mapped.classes
    assert mapped.left_out == {"contempt": 3}
    assert mapped.fingerprint != default.fingerprint
    assert default_mapping(["1_anger", "Surprised", "xyz"]) == {"1_anger": "angry", "Surprised": "surprise", "xyz": IGNORE}
    with pytest.raises(DataError, match="LABEL=CLASS"):
        parse_mapping("sadness=blue")


def test_a_model_is_judged_on_the_classes_it_shares_with_the_data(own_dataset, tiny_checkpoints):
    data = load_external(own_dataset)
    info = list_checkpoints(tiny_checkpoints)[0]
    clf = load_checkpoint(info.id, tiny_checkpoints)
    result = evaluate_external(clf, data, tiny_checkpoints)
    assert result.predictions.classes == ("angry", "disgust", "happy", "sad", "surprise")
    assert result.missing_in_data == ("fear", "neutral") and result.missing_in_model == ("contempt",)
    assert result.faces_left_out == 3 and len(result.predictions.labels) == 17
    assert np.allclose(result.predictions.probs.sum(1), 1, atol=1e-5)
    keep = [i for i, label in enumerate(data.labels) if label != "contempt"]
    full = clf.predict_proba(data.images[keep][:, None])
    columns = [clf.classes.index(c) for c in result.predictions.classes]
    expected = np.array(columns)[full[:, columns].argmax(1)]  # top class among the shared ones
    truth = [clf.classes.index(data.labels[i]) for i in keep]
    assert compute_metrics(result.predictions).accuracy == pytest.approx(float(np.mean(expected == truth)))
    assert result.outside_top == pytest.approx(float(np.isin(full.argmax(1), columns, invert=True).mean()))
    assert result.note() == (
        f"on the 5 shared classes; the model's fear, neutral left out (its top class on {result.outside_top:.0%} of faces); "
        "3 faces of contempt left out (not a class of the model)"
    )


def test_a_model_that_cannot_be_judged_is_skipped_with_the_reason_and_the_others_run(own_dataset, tiny_checkpoints):
    first, second = (c.id for c in list_checkpoints(tiny_checkpoints))
    mapping = {"anger": "angry", "happiness": "happy"} | dict.fromkeys(["disgust", "sadness", "surprise", "posed_other"], IGNORE)
    data = load_external(own_dataset, mapping)  # angry, happy and contempt

    def load(cid: str):
        clf = load_checkpoint(cid, tiny_checkpoints)
        if cid == first:  # a model of other classes: only happy in common with the data
            return FerClassifier(clf.model, replace(clf.meta, classes=("happy", "x", "fear", "neutral", "sad", "disgust", "y")))
        return clf

    started: list[tuple[int, str]] = []
    evaluated = evaluate_checkpoints(data, [first, second], load, tiny_checkpoints, lambda *a: started.append(a))
    assert started == [(0, first), (1, second)]
    assert list(evaluated.skipped) == [first] and "shares 1 class(es)" in evaluated.skipped[first]
    assert list(evaluated.results) == [second] and evaluated.results[second].predictions.classes == ("angry", "happy")


def test_results_are_cached_by_dataset_fingerprint(own_dataset, tiny_checkpoints, tmp_path, monkeypatch):
    store = tmp_path / "store"
    shutil.copytree(tiny_checkpoints, store)
    data = load_external(own_dataset, cache=external_root(store))
    clf = load_checkpoint(list_checkpoints(store)[0].id, store)
    first = evaluate_external(clf, data, store)
    monkeypatch.setattr(type(clf), "predict_proba", lambda *a, **k: pytest.fail("the cached result was not used"))
    again = evaluate_external(clf, load_external(own_dataset, cache=external_root(store)), store)
    assert np.array_equal(first.predictions.probs, again.predictions.probs) and again.note() == first.note()
    listed = cached_datasets(store)
    assert list(listed) == [data.fingerprint] and listed[data.fingerprint].counts == data.counts()
    assert set(cached_results(data.fingerprint, store)) == {clf.meta.id}


def test_a_damaged_or_foreign_faces_file_is_not_listed(own_dataset, tmp_path):
    from safetensors.numpy import save_file

    from fer_core.external.records import FACES_FILE

    root = external_root(tmp_path / "store")
    data = load_external(own_dataset, cache=root)
    (root / "cut").mkdir()
    (root / "cut" / FACES_FILE).write_bytes((root / data.fingerprint / FACES_FILE).read_bytes()[:100])
    (root / "foreign").mkdir()  # a header without the summary's fields
    images = {"images": np.zeros((1, 48, 48), np.uint8)}
    save_file(images, str(root / "foreign" / FACES_FILE), metadata={"data": json.dumps({"name": "x"})})
    listed = cached_datasets(tmp_path / "store")
    assert list(listed) == [data.fingerprint] and listed[data.fingerprint] == data.summary()


def test_the_same_faces_as_a_zip_upload_and_a_folder_are_one_dataset(own_dataset, tmp_path, monkeypatch):
    """A zip holds its folder under another name (ckplus/anger/...): the faces are what makes the dataset."""
    from fer_core.external import dataset

    cache = external_root(tmp_path / "store")
    folder = load_external(own_dataset, cache=cache)
    archive = shutil.make_archive(str(tmp_path / "upload" / "ckplus"), "zip", own_dataset.parent, own_dataset.name)
    zipped = load_external(Path(archive), cache=cache)
    assert zipped.fingerprint == folder.fingerprint and list(cached_datasets(tmp_path / "store")) == [folder.fingerprint]
    assert zipped.names == folder.names  # the dataset as it was first added: cached results keep their faces
    monkeypatch.setattr(dataset, "_decode", lambda *a: pytest.fail("a source seen before was decoded again"))
    assert load_external(Path(archive), cache=cache).fingerprint == folder.fingerprint


def test_paths_in_a_csv_cannot_leave_its_folder(own_dataset, tmp_path):
    (tmp_path / "faces").mkdir()
    shutil.copy(own_dataset / "anger" / "S000_0.png", tmp_path / "faces" / "a.png")
    shutil.copy(own_dataset / "happiness" / "S003_0.png", tmp_path / "faces" / "h.png")
    csv = tmp_path / "labels.csv"
    csv.write_text(f"path,label\nfaces/a.png,angry\nfaces/h.png,happy\n{own_dataset / 'sadness' / 'S004_0.png'},sad\n")
    data = load_external(csv)
    assert data.counts() == {"angry": 1, "happy": 1}
    assert len(data.unreadable) == 1 and "outside" in data.unreadable[0]


def test_images_outside_class_folders_are_a_clear_error(tmp_path, own_dataset):
    shutil.copy(own_dataset / "anger" / "S000_0.png", tmp_path / "loose.png")
    with pytest.raises(DataError, match="folder named after their class"):
        load_external(tmp_path)
    for missing in ("gone", "gone.zip", "gone.csv"):  # said missing, not "not a readable zip" or a wrong type
        with pytest.raises(DataError, match=f"{missing}: no such file or folder"):
            load_external(tmp_path / missing)


def test_cli_evaluates_checkpoints_and_their_ensemble_on_own_data(own_dataset, tiny_checkpoints, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(tiny_checkpoints, store)
    ids = [i.id for i in list_checkpoints(store)]
    args = ["evaluate", "--own-data", str(own_dataset), "--checkpoints", str(store), "--json"]
    assert main([*args, "--ensemble", ",".join(ids)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"]["counts"]["contempt"] == 3 and out["dataset"]["left_out"] == {"posed_other": 3}
    assert [r["checkpoint"] for r in out["results"]] == ids
    assert all(r["classes"] == ["angry", "disgust", "happy", "sad", "surprise"] for r in out["results"])
    assert 0 <= out["ensemble"]["metrics"]["accuracy"] <= 1 and out["ensemble"]["metrics"]["n"] == 17
    assert main(["evaluate", "--own-data", str(own_dataset), "--checkpoints", str(store)]) == 0
    text = capsys.readouterr().out
    assert "2 found by the detector" in text and "posed_other" in text and "broken.png" in text
    assert "on the 5 shared classes" in text
    happy_and_contempt = "anger=ignore,disgust=ignore,sadness=ignore,surprise=ignore,posed_other=ignore"
    assert main(["evaluate", "--own-data", str(own_dataset), "--checkpoints", str(store), "--map", happy_and_contempt]) == 1
    assert "shares 1 class(es)" in capsys.readouterr().err  # no model can be judged: one line saying why
