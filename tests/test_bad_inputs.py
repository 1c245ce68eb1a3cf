"""The bad-input corpus (tests/bad_inputs.py) through the Python API, the CLI and the Predict page."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from fer_core import list_checkpoints, load_checkpoint, predict_photo
from fer_core.faces import SMALL_IMAGE

from .bad_inputs import ERROR, FACE, NO_FACE, WHOLE, build_corpus
from .conftest import REPO

ALLOWED = {"png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"}  # the Predict page's uploader
TIMEOUT = 300  # the page predicts 35 files, one of them with six faces


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, grace_hopper):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, build_corpus(folder, grace_hopper)


def check(case, error: str | None, faces: list[dict]) -> None:
    """One outcome against what the case expects; `faces` as in `predict --json`."""
    if case.expect == ERROR:
        assert error and faces == [], case.name
        return
    assert error is None, f"{case.name}: {error}"
    detected = [f for f in faces if f["detected"]]
    if case.expect == FACE:
        assert len(detected) >= case.faces, f"{case.name}: {len(detected)} faces found"
    elif case.expect == NO_FACE:
        assert len(faces) == 1 and not detected and "no face" in faces[0]["note"], case.name
    elif case.expect == WHOLE:
        assert len(faces) == 1 and "small image" in faces[0]["note"], case.name
    for f in faces:
        assert all(f["predictions"].values()), case.name


def test_corpus_is_big_enough(corpus):
    _, cases = corpus
    assert len(cases) >= 30 and {c.expect for c in cases} == {ERROR, FACE, NO_FACE, WHOLE}


def test_api_handles_every_case(corpus, tiny_checkpoints, grace_hopper):
    folder, cases = corpus
    classifiers = [load_checkpoint(c.id, tiny_checkpoints) for c in list_checkpoints(tiny_checkpoints)]
    upright = Image.open(grace_hopper).size[::-1]  # (H, W)
    for case in cases:
        for source in (folder / case.filename, (folder / case.filename).read_bytes()):  # path and upload bytes
            result = predict_photo(classifiers, source)
            check(case, result.error, result.to_json()["faces"])
        if case.name.startswith("EXIF orientation"):
            assert result.image.shape[:2] == upright, f"{case.name}: not turned upright"


def test_cli_handles_every_case_in_one_call(corpus, tiny_checkpoints):
    folder, cases = corpus
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fer_core",
            "predict",
            *[str(folder / c.filename) for c in cases],
            "--checkpoints",
            str(tiny_checkpoints),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    images = json.loads(proc.stdout)["images"]
    assert len(images) == len(cases)
    for case, image in zip(cases, images, strict=True):
        check(case, image["error"], image["faces"])


def test_predict_page_survives_the_whole_corpus(corpus, tiny_checkpoints, kaggle_zip, monkeypatch):
    folder, cases = corpus
    monkeypatch.setenv("FER_CHECKPOINTS", str(tiny_checkpoints))
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    monkeypatch.chdir(REPO)
    at = AppTest.from_file(str(REPO / "workbench.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page("app_pages/predict.py")
    at.run()
    # The uploader only takes image extensions, so the others arrive renamed, as a user would rename them.
    names = [c.filename if c.filename.rsplit(".", 1)[-1] in ALLOWED else c.filename + ".png" for c in cases]
    at.file_uploader[0].set_value(
        [(n, (folder / c.filename).read_bytes(), "application/octet-stream") for n, c in zip(names, cases, strict=True)]
    )
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    errors = " ".join(e.value for e in at.error)
    for case, name in zip(cases, names, strict=True):
        named = f"{name}:" in errors
        assert named == (case.expect == ERROR), f"{case.name}: error shown={named}"
    assert "Traceback" not in errors
    first_faces = [m.value for m in at.markdown if m.value.startswith("**Face 1**")]
    no_face = [m.value for m in at.markdown if m.value.startswith("**Whole image** (no face)")]
    small = [m.value for m in at.markdown if m.value.startswith(f"**Whole image** ({SMALL_IMAGE})")]
    assert len(first_faces) == sum(c.expect == FACE for c in cases)  # every other file got its predictions,
    assert len(no_face) == sum(c.expect == NO_FACE for c in cases)  # labelled as a non-face when none was found
    assert len(small) == sum(c.expect == WHOLE for c in cases)  # tiny images are taken whole, as face crops
    at.file_uploader[0].set_value([("face.jpg", (folder / "face.jpg").read_bytes(), "image/jpeg")])
    at.run()  # the server keeps serving after all of that
    assert not at.exception and not at.error
    assert [m.value.split(":")[0] for m in at.markdown if m.value.startswith("**Face")] == ["**Face 1**"]
