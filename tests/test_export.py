"""Export: every registered architecture to ONNX with parity, TorchScript, int8 with its accuracy change, the ONNX Runtime
backend, the README's onnxruntime-only example, and every bad input the issue lists."""

from __future__ import annotations

import errno
import json
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_core.classifier import load_checkpoint
from fer_core.data import load_dataset
from fer_core.export import SIDECAR, ExportError, export_checkpoint, load_export
from fer_core.models import list_models
from fer_core.store import CheckpointError, list_checkpoints

from .conftest import REPO


def _checkpoint(root: Path, kaggle_zip: Path, model: str) -> str:
    from fer_core.training import make_config, train_and_save

    cfg = make_config(model, "quick", data=str(kaggle_zip), epochs=1, batch_size=8, device="cpu")
    return train_and_save(cfg, root=root, measure_efficiency=False).name


def _test_faces(kaggle_zip: Path) -> torch.Tensor:
    return load_dataset(kaggle_zip).take("test")[0]


@pytest.fixture(scope="module")
def keras(tiny_checkpoints) -> str:
    return next(c.id for c in list_checkpoints(tiny_checkpoints) if c.meta and c.meta.model == "keras_cnn")


# Two timm models by name beside the registry: a ConvNeXt as timm builds it, and a ViT told the faces' size (img_size).
@pytest.mark.parametrize("model", [m.name for m in list_models()] + ["timm:convnext_atto", "timm:vit_tiny_patch16_224"])
def test_every_registered_architecture_exports_to_onnx_with_parity(model, kaggle_zip, tmp_path):
    root = tmp_path / "store"
    cid = _checkpoint(root, kaggle_zip, model)
    sidecar = export_checkpoint(cid, tmp_path / "out", data=kaggle_zip, root=root)
    clf = load_checkpoint(cid, root)
    assert cid.startswith(model.replace(":", "-") + "-")  # a folder name on every OS
    assert sidecar.checkpoint_id == cid and sidecar.classes == clf.classes and sidecar.input.size == clf.input.size
    assert sidecar.parity.max_abs_diff <= 1e-4 and sidecar.parity.agreement == 1.0 and sidecar.parity.faces > 0
    module, loaded = load_export(tmp_path / "out")
    assert loaded == sidecar
    faces = _test_faces(kaggle_zip)
    x = torch.cat([faces[:3], faces[:2]])  # a batch size the export was not traced with
    ours = module(_model_input(x, clf)).softmax(1).numpy()
    np.testing.assert_allclose(ours, clf.probabilities(x).numpy(), atol=1e-4)


def _model_input(faces: torch.Tensor, clf) -> torch.Tensor:
    from fer_core.data import to_model_input

    return to_model_input(faces, clf.input)


def test_torchscript_and_int8_exports(tiny_checkpoints, keras, kaggle_zip, tmp_path):
    script = export_checkpoint(keras, tmp_path / "ts", "torchscript", data=kaggle_zip, root=tiny_checkpoints)
    assert script.file == "model.pt" and script.parity.max_abs_diff <= 1e-4
    faces = _test_faces(kaggle_zip)
    clf = load_checkpoint(keras, tiny_checkpoints)
    loaded = torch.jit.load(str(tmp_path / "ts" / "model.pt"))  # the file as a user loads it, not the sidecar's word
    with torch.inference_mode():
        scripted = loaded(_model_input(faces, clf)).softmax(1).numpy()
    np.testing.assert_allclose(scripted, clf.probabilities(faces), atol=1e-4)
    int8 = export_checkpoint(keras, tmp_path / "int8", quantize="int8", data=kaggle_zip, root=tiny_checkpoints)
    flt = export_checkpoint(keras, tmp_path / "float", data=kaggle_zip, root=tiny_checkpoints)
    assert int8.quantized == "int8" and int8.int8 is not None and int8.int8.calibration_faces > 0
    labels = load_dataset(kaggle_zip).take("test")[1].numpy()
    assert int8.int8.float_accuracy == pytest.approx(float((clf.probabilities(faces).numpy().argmax(1) == labels).mean()))
    module, _ = load_export(tmp_path / "int8")
    measured = (module(_model_input(faces, clf)).argmax(1).numpy() == labels).mean()
    assert int8.int8.int8_accuracy == pytest.approx(float(measured)) and int8.int8.test_faces == len(faces)
    assert (tmp_path / "int8" / "model.onnx").stat().st_size < (tmp_path / "float" / "model.onnx").stat().st_size
    assert flt.int8 is None and flt.quantized is None


def test_onnxruntime_backend_gives_the_same_classifier(tiny_checkpoints, keras, kaggle_zip, monkeypatch):
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    faces = _test_faces(kaggle_zip)[:, 0].numpy()
    ort = load_checkpoint(keras, tiny_checkpoints, backend="onnxruntime")
    torch_clf = load_checkpoint(keras, tiny_checkpoints)
    assert ort.backend == "onnxruntime" and ort.classes == torch_clf.classes and ort.id == torch_clf.id
    np.testing.assert_allclose(ort.predict_proba(faces), torch_clf.predict_proba(faces), atol=1e-4)
    np.testing.assert_allclose(ort.predict_proba(faces, tta="flip"), torch_clf.predict_proba(faces, tta="flip"), atol=1e-4)
    import fer_core.export

    monkeypatch.setattr(fer_core.export, "export_checkpoint", lambda *a, **k: pytest.fail("exported twice"))
    load_checkpoint(keras, tiny_checkpoints, backend="onnxruntime")  # the cached export
    from fer_core.explain import grad_cam

    with pytest.raises(ValueError, match="explanations need the model's gradients"):
        grad_cam(ort, faces[0])


def test_predict_cli_with_the_onnxruntime_backend(tiny_checkpoints, keras, kaggle_zip, grace_hopper, monkeypatch):
    monkeypatch.setenv("FER_DATA", str(kaggle_zip))

    def run(backend: str) -> dict:
        out = subprocess.run(
            [sys.executable, "-m", "fer_core", "predict", str(grace_hopper), "--models", keras, "--checkpoints"]
            + [str(tiny_checkpoints), "--backend", backend, "--json"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout)["images"][0]["faces"][0]["predictions"][keras]

    ours, reference = run("onnxruntime"), run("torch")
    assert ours["label"] == reference["label"]
    assert ours["probabilities"] == pytest.approx(reference["probabilities"], abs=1e-4)


def test_the_readme_example_runs_with_onnxruntime_alone(tiny_checkpoints, keras, kaggle_zip, tmp_path):
    readme = (REPO / "README.md").read_text()
    example = re.search(r"<!-- onnx-example -->\n```python\n(.*?)```", readme, re.S)
    assert example, "the README lost its ONNX example"
    export_checkpoint(keras, tmp_path / "export", data=kaggle_zip, root=tiny_checkpoints)
    face = _test_faces(kaggle_zip)[0, 0].numpy()
    from PIL import Image

    Image.fromarray(face).save(tmp_path / "face.png")
    (tmp_path / "example.py").write_text(example.group(1))
    check = "import runpy, sys; runpy.run_path('example.py'); print('torch imported' if 'torch' in sys.modules else 'no torch')"
    out = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    label, probability, torch_line = out.split()[0], float(out.split()[1]), out.strip().splitlines()[-1]
    probs = load_checkpoint(keras, tiny_checkpoints).predict_proba(face)[0]
    clf = load_checkpoint(keras, tiny_checkpoints)
    assert torch_line == "no torch" and label == clf.classes[int(probs.argmax())]
    assert probability == pytest.approx(float(probs.max()), abs=1e-4)


def test_bad_targets_and_checkpoints_are_refused(tiny_checkpoints, keras, kaggle_zip, tmp_path, monkeypatch):
    def export(out: Path, checkpoint: str = keras) -> str:
        with pytest.raises((ExportError, CheckpointError)) as info:
            export_checkpoint(checkpoint, out, data=kaggle_zip, root=tiny_checkpoints)
        return str(info.value)

    assert "no-such-model" in export(tmp_path / "a", "no-such-model")
    (tmp_path / "exists").mkdir()
    assert "exists: give a new folder" in export(tmp_path / "exists")
    (tmp_path / "file").write_text("x")
    assert "is a file" in export(tmp_path / "file")
    assert "is not a folder" in export(tmp_path / "missing" / "out")
    import fer_core.export as ex

    monkeypatch.setattr(ex.os, "access", lambda *a: False)
    assert "read-only" in export(tmp_path / "ro")
    monkeypatch.undo()

    def refused(**kwargs):  # os.access said yes, the folder says no (root on a read-only mount)
        raise PermissionError(13, "Permission denied", str(tmp_path / ".ro.tmp-x"))

    monkeypatch.setattr(ex.tempfile, "mkdtemp", refused)
    assert export(tmp_path / "ro") == f"{tmp_path}: cannot write there (Permission denied)"  # not the hidden folder
    monkeypatch.undo()
    monkeypatch.setattr(ex, "find_default_dataset", lambda: None)
    with pytest.raises(ExportError, match="int8 is calibrated on training faces: give --data"):
        export_checkpoint(keras, tmp_path / "nodata", quantize="int8", root=tiny_checkpoints)
    with pytest.raises(ExportError, match="--quantize int8 is for ONNX"):
        export_checkpoint(keras, tmp_path / "q", "torchscript", "int8", data=kaggle_zip, root=tiny_checkpoints)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists", "file"]  # nothing half-written


def test_without_a_dataset_parity_runs_on_a_real_face_that_every_install_has(tiny_checkpoints, keras, tmp_path, monkeypatch):
    import fer_core.export as ex

    monkeypatch.setattr(ex, "find_default_dataset", lambda: None)
    sidecar = export_checkpoint(keras, tmp_path / "out", root=tiny_checkpoints)
    assert sidecar.parity.source == ex.SAMPLE_SOURCE and sidecar.parity.faces == 72
    assert sidecar.parity.max_abs_diff <= 1e-4 and sidecar.parity.agreement == 1.0


def test_an_architecture_that_does_not_export_and_a_full_disk_leave_nothing(
    tiny_checkpoints, keras, kaggle_zip, tmp_path, monkeypatch
):
    import fer_core.export as ex

    def no_export(*args, **kwargs):
        raise RuntimeError("Unsupported: aten::fancy_op\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    with pytest.raises(ExportError, match="keras_cnn does not export to onnx: RuntimeError: Unsupported: aten::fancy_op"):
        export_checkpoint(keras, tmp_path / "a", data=kaggle_zip, root=tiny_checkpoints)
    monkeypatch.undo()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ex, "_sidecar", disk_full)  # the model file is written, the sidecar is not
    with pytest.raises(OSError, match="No space left"):
        export_checkpoint(keras, tmp_path / "b", data=kaggle_zip, root=tiny_checkpoints)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda d: d / "model.onnx", "not the file that was exported"),
        (lambda d: d / SIDECAR, "not the ones inside model.onnx"),
        (lambda d: d / SIDECAR, "not a fer_core export sidecar"),
        (lambda d: d / SIDECAR, "no readable model.json"),
    ],
    ids=["onnx-bytes", "sidecar-classes", "sidecar-garbage", "sidecar-missing"],
)
def test_a_tampered_export_is_refused_at_load(tamper, message, tiny_checkpoints, keras, kaggle_zip, tmp_path):
    out = tmp_path / "export"
    export_checkpoint(keras, out, data=kaggle_zip, root=tiny_checkpoints)
    target = tamper(out)
    if message == "not the file that was exported":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif message == "not the ones inside model.onnx":
        sidecar = json.loads(target.read_text())
        sidecar["classes"] = sidecar["classes"][::-1]
        target.write_text(json.dumps(sidecar))
    elif message == "not a fer_core export sidecar":
        target.write_text('{"format": "onnx", "file": "../../etc/passwd"}')
    else:
        target.unlink()
    with pytest.raises(ExportError, match=message):
        load_export(out)


def test_predict_backends_are_decided_by_a_measurement_on_this_machine(
    tiny_checkpoints, keras, kaggle_zip, tmp_path, monkeypatch
):
    from fer_core.backends import faster_backend, measure_backends, speed_file
    from fer_core.store import read_meta

    monkeypatch.setenv("FER_DATA", str(kaggle_zip))
    path = tiny_checkpoints / keras
    meta = read_meta(path)
    assert faster_backend(path, meta, tmp_path) == "torch"  # nothing measured yet: PyTorch, and no export is made
    assert not (tmp_path / "onnx").exists()
    speed = measure_backends(path, meta, tmp_path)
    assert speed.torch_ms > 0 and speed.onnxruntime_ms > 0
    assert faster_backend(path, meta, tmp_path) == ("onnxruntime" if speed.onnxruntime_ms < speed.torch_ms else "torch")
    for torch_ms, ort_ms, faster in ((5.0, 1.0, "onnxruntime"), (1.0, 5.0, "torch")):  # the file decides, either way
        speed_file(path, meta, tmp_path).write_text(json.dumps({**asdict(speed), "torch_ms": torch_ms, "onnxruntime_ms": ort_ms}))
        assert faster_backend(path, meta, tmp_path) == faster
    other = {**asdict(speed), "torch_ms": 5.0, "onnxruntime_ms": 1.0, "measured_on": "another machine"}
    speed_file(path, meta, tmp_path).write_text(json.dumps(other))
    assert faster_backend(path, meta, tmp_path) == "torch"  # measured elsewhere: not this machine's answer
    speed_file(path, meta, tmp_path).write_text("{garbage")
    assert faster_backend(path, meta, tmp_path) == "torch"
