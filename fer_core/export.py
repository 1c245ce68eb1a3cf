"""Take a model out: a checkpoint as ONNX (or TorchScript) plus a JSON sidecar with everything needed to feed it,
checked against the PyTorch model on real faces before anything is written; int8 ONNX calibrated on training faces,
with its accuracy change; an export read back and run on ONNX Runtime (OrtModule). Takes a network and its meta,
never a FerClassifier: the ONNX Runtime backend (backends.py) exports through it, and classifier uses that.

    <out>/model.onnx   input "input": float32 (batch, channels, size, size), normalised as the sidecar says
                       output "logits": (batch, classes); softmax gives the probabilities
    <out>/model.json   the Sidecar: classes in output order, the input recipe, the checkpoint's id, metrics and card,
                       the parity figures, the file's SHA-256 (a changed model or sidecar is refused at load)
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from .choices import EXPORT_FORMATS
from .data import to_model_input
from .data.choices import find_default_dataset
from .data.disk_cache import file_digest
from .faces import PhotoError, crop_face, find_faces, load_photo
from .inference import predict_logits
from .input_spec import MEAN, STD, InputSpec
from .records import CheckpointMeta
from .store import dataset_for, load_weights, read_meta, resolve_checkpoint

FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
SIDECAR = "model.json"
SIDECAR_VERSION = 1
OPSET = 18
PARITY_FACES = 512  # PrivateTest faces the export is checked on
PARITY_TOLERANCE = 1e-4  # max |probability difference| a float32 export may show
CALIBRATION_FACES = 512  # training faces int8 activations are calibrated on


class ExportError(ValueError):
    """An export that cannot be made or an exported model that cannot be trusted; the message says why."""


@dataclass(frozen=True)
class InputRecipe:
    """How a face becomes the model's input, in the order to apply it (fer_core.data.to_model_input does the same)."""

    face: str = "48x48 grayscale uint8 face crop (fer_core.faces.crop_face: the detector's box, 15% margin, squared)"
    scale: float = 1 / 255  # uint8 -> [0, 1]
    fit: str = "resize"  # "crop": centre crop to `size`; "resize": bilinear (antialiased) resize to `size`
    size: int = 48
    mean: float = MEAN  # then (x - mean) / std
    std: float = STD
    channels: int = 1  # the grey channel repeated to this many
    layout: str = "NCHW"
    dtype: str = "float32"


@dataclass(frozen=True)
class Parity:
    """The export against the PyTorch model it came from, on the same faces."""

    faces: int
    source: str  # which faces
    max_abs_diff: float  # largest |probability difference| over faces and classes
    agreement: float  # share of faces with the same predicted class


@dataclass(frozen=True)
class Int8Accuracy:
    """Static int8 quantization (ONNX Runtime, QDQ, per-channel weights) against the float export."""

    calibration_faces: int  # training faces the activation ranges come from
    test_faces: int
    float_accuracy: float  # the float32 ONNX model on those test faces
    int8_accuracy: float


@dataclass(frozen=True)
class Sidecar:
    format: str  # onnx | torchscript
    file: str
    sha256: str
    checkpoint_id: str
    model: str
    classes: tuple[str, ...]
    input: InputRecipe
    parity: Parity
    metrics: dict[str, Any]  # the checkpoint's PrivateTest metrics (records.TestMetrics)
    card: str
    quantized: str | None = None  # "int8"
    int8: Int8Accuracy | None = None
    versions: dict[str, str] = field(default_factory=dict)
    opset: int = OPSET
    format_version: int = SIDECAR_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str, where: str) -> Sidecar:
        """A sidecar read back; anything missing, extra or of the wrong type is refused (a tampered file)."""
        try:
            d = json.loads(text)
            if d.pop("format_version") != SIDECAR_VERSION or set(d) != {f.name for f in fields(cls)} - {"format_version"}:
                raise ValueError("unexpected fields or version")
            sidecar = cls(
                **{
                    **d,
                    "classes": tuple(d["classes"]),
                    "input": InputRecipe(**d["input"]),
                    "parity": Parity(**d["parity"]),
                    "int8": Int8Accuracy(**d["int8"]) if d["int8"] else None,
                }
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ExportError(f"{where}: not a fer_core export sidecar ({exc})") from None
        if (
            sidecar.format not in EXPORT_FORMATS
            or sidecar.file != FILES[sidecar.format]
            or not all(isinstance(c, str) for c in sidecar.classes)
        ):
            raise ExportError(f"{where}: not a fer_core export sidecar (format, file or classes)")
        return sidecar


class Packaged(nn.Module):
    """What is exported: the trained network in float32, normalised input in, logits out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.float().to(memory_format=torch.contiguous_format).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    fmt: str = "onnx",
    quantize: str | None = None,
    data: str | Path | None = None,
    root: Path | None = None,
) -> Sidecar:
    """Export a checkpoint to `out` (a folder that must not exist yet), parity-checked before anything is written.
    `data`: FER2013 for the parity faces (PrivateTest) and int8 calibration (training faces); default: where it
    usually is (data.choices.find_default_dataset)."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    if quantize not in (None, "int8") or (quantize and fmt != "onnx"):
        raise ExportError("--quantize int8 is for ONNX exports only")
    out = Path(out)
    _check_target(out)
    path = resolve_checkpoint(checkpoint, root)
    meta = read_meta(path)
    model = Packaged(load_weights(path, meta))
    faces = _faces(meta, data, with_training=quantize is not None)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:  # os.access can say yes where the write is refused (root on a read-only mount)
        raise ExportError(f"{out.parent}: cannot write there ({exc.strerror})") from None
    try:
        file = tmp / FILES[fmt]
        _write_model(model, meta, fmt, file)
        int8 = _quantize(meta, file, faces) if quantize else None
        parity = _parity(model, meta, file, faces, fmt)
        if quantize is None and parity.max_abs_diff > PARITY_TOLERANCE:
            raise ExportError(
                f"{meta.model}: the {fmt} export differs from PyTorch by up to {parity.max_abs_diff:.2e} in "
                f"probability (tolerance {PARITY_TOLERANCE:g}); nothing was written"
            )
        sidecar = _sidecar(meta, fmt, file, parity, quantize, int8)
        (tmp / SIDECAR).write_text(sidecar.to_json(), encoding="utf-8")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's folder is private; the export is an ordinary folder
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sidecar


def export_zip(checkpoint: str | Path, root: Path | None = None, data: str | Path | None = None) -> bytes:
    """An ONNX export and its sidecar as one zip to download (exported into a temporary folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export"
        sidecar = export_checkpoint(checkpoint, out, data=data, root=root)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in (sidecar.file, SIDECAR):
                zf.write(out / name, f"{sidecar.checkpoint_id}-onnx/{name}")
        return buffer.getvalue()


def _check_target(out: Path) -> None:
    if out.is_file():
        raise ExportError(f"{out} is a file: give a folder that does not exist yet")
    if out.exists():
        raise ExportError(f"{out} exists: give a new folder (an export never overwrites another)")
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent} is not a folder")
    if not os.access(out.parent, os.W_OK):
        raise ExportError(f"{out.parent} is read-only")


@dataclass(frozen=True)
class _Faces:
    test: torch.Tensor  # uint8 (N,1,48,48): parity, and the int8 accuracy
    test_labels: np.ndarray
    source: str
    training: torch.Tensor | None  # int8 calibration


def _faces(meta: CheckpointMeta, data: str | Path | None, with_training: bool) -> _Faces:
    """The test faces (FER2013's PrivateTest) of the checkpoint's own dataset, and training faces to calibrate on."""
    path = Path(data) if data else find_default_dataset()
    if path is None and with_training:
        raise ExportError("int8 is calibrated on training faces: give --data (FER2013's Kaggle .zip, folder or fer2013.csv)")
    if path is None:
        return _Faces(_sample_photo_faces(), np.empty(0, np.int64), SAMPLE_SOURCE, None)
    dataset = dataset_for(meta, path)
    images, labels = dataset.take("test")
    calibration = None
    if with_training:
        train, _ = dataset.take("train")
        pick = np.random.default_rng(0).choice(len(train), min(CALIBRATION_FACES, len(train)), replace=False)
        calibration = train[torch.as_tensor(np.sort(pick))]
    return _Faces(images, labels.numpy(), f"test faces of {path.name}", calibration)


SAMPLE_SOURCE = "crops of the face in matplotlib's sample photo grace_hopper.jpg (no FER2013 found)"


def _sample_photo_faces() -> torch.Tensor:
    """Real faces without a dataset: the face in a photo every install has (matplotlib's sample data), cropped with
    other margins and offsets and mirrored, as a detector's crops of one person would vary."""
    try:
        import matplotlib.cbook

        photo = load_photo(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    except (ImportError, OSError, PhotoError) as exc:
        raise ExportError(f"an export is checked on real faces: give --data (FER2013) ({exc})") from None
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    x, y, w, h = find_faces(photo)[0].box
    crops = [
        crop_face(gray, (x + dx * w // 20, y + dy * h // 20, w, h), margin)
        for margin in (0.0, 0.1, 0.2, 0.3)
        for dx in (-1, 0, 1)
        for dy in (-1, 0, 1)
    ]
    faces = np.stack(crops + [np.ascontiguousarray(c[:, ::-1]) for c in crops])
    return torch.from_numpy(faces)[:, None]


def _write_model(module: Packaged, meta: CheckpointMeta, fmt: str, file: Path) -> None:
    """The network alone (normalised input -> logits) with a dynamic batch dimension."""
    example = torch.zeros(2, meta.input.channels, meta.input.size, meta.input.size)
    try:
        if fmt == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                torch.jit.save(torch.jit.trace(module, example), str(file))
            return
        torch.onnx.export(
            module,
            (example,),
            str(file),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    except Exception as exc:  # each exporter raises its own kinds; say which architecture and why
        raise ExportError(f"{meta.model} does not export to {fmt}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    _stamp(file, meta)


def _stamp(file: Path, meta: CheckpointMeta) -> None:
    """The checkpoint and classes inside the ONNX file too: a sidecar that was edited no longer matches them."""
    import onnx

    model = onnx.load(str(file))
    for key, value in {"fer_core.checkpoint_id": meta.id, "fer_core.classes": json.dumps(list(meta.classes))}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(file))


def _parity(model: Packaged, meta: CheckpointMeta, file: Path, faces: _Faces, fmt: str) -> Parity:
    """The written file run as a user would (ONNX Runtime, or TorchScript) against the PyTorch model."""
    n = min(PARITY_FACES, len(faces.test))
    sample = faces.test[:n]
    reference = _probabilities(model, sample, meta.input)
    exported = _probabilities(_runner(file, fmt), sample, meta.input)
    return Parity(
        faces=n,
        source=faces.source,
        max_abs_diff=float(np.abs(exported - reference).max()) if n else 0.0,
        agreement=float((exported.argmax(1) == reference.argmax(1)).mean()) if n else 1.0,
    )


def _quantize(meta: CheckpointMeta, file: Path, faces: _Faces) -> Int8Accuracy:
    """Replace the float ONNX file by its static int8 version (activation ranges from training faces), and measure
    both on the test faces."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    assert faces.training is not None
    spec = meta.input
    batches = iter([{"input": to_model_input(b, spec).numpy()} for b in faces.training.split(64)])

    class Calibration(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(batches, None)

    float_accuracy = _accuracy(OrtModule(file), faces, spec)
    prepared, quantized = file.with_suffix(".prep.onnx"), file.with_suffix(".int8.onnx")
    quant_pre_process(str(file), str(prepared))  # shapes and folded batch norms: what ORT's quantizer expects
    quantize_static(
        str(prepared),
        str(quantized),
        Calibration(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
    )
    os.replace(quantized, file)
    prepared.unlink()
    _stamp(file, meta)
    return Int8Accuracy(
        calibration_faces=len(faces.training),
        test_faces=len(faces.test),
        float_accuracy=float_accuracy,
        int8_accuracy=_accuracy(OrtModule(file), faces, spec),
    )


def _accuracy(module: nn.Module, faces: _Faces, spec: InputSpec) -> float:
    return float((_probabilities(module, faces.test, spec).argmax(1) == faces.test_labels).mean())


def _probabilities(module: nn.Module, faces: torch.Tensor, spec: InputSpec) -> np.ndarray:
    return predict_logits(module, faces, spec, torch.device("cpu")).softmax(1).numpy()


def _runner(file: Path, fmt: str) -> nn.Module:
    """The written file, run as its users will run it."""
    if fmt == "onnx":
        return OrtModule(file)
    with warnings.catch_warnings():  # PyTorch now points to torch.export; TorchScript is what this format is for
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(file))


def _sidecar(
    meta: CheckpointMeta, fmt: str, file: Path, parity: Parity, quantize: str | None, int8: Int8Accuracy | None
) -> Sidecar:
    import onnx
    import onnxruntime

    spec = meta.input
    return Sidecar(
        format=fmt,
        file=file.name,
        sha256=file_digest(file),
        checkpoint_id=meta.id,
        model=meta.model,
        classes=meta.classes,
        input=InputRecipe(fit=spec.fit, size=spec.size, channels=spec.channels),
        parity=parity,
        metrics=asdict(meta.test_metrics),
        card=meta.card,
        quantized=quantize,
        int8=int8,
        versions={"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
    )


class OrtModule(nn.Module):
    """An ONNX model run by ONNX Runtime behind nn.Module's call: normalised input tensor in, logits tensor out, so
    FerClassifier, TTA and predict_logits use it unchanged. Inference only (no gradients: Explain needs PyTorch)."""

    def __init__(self, file: Path) -> None:
        super().__init__()
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ExportError(f"{file}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from exc
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(["logits"], {"input": np.ascontiguousarray(x.detach().float().cpu().numpy())})
        return torch.from_numpy(logits)


def load_export(folder: str | Path) -> tuple[OrtModule, Sidecar]:
    """An ONNX export and its sidecar, after checking that neither was changed since export."""
    folder = Path(folder)
    try:
        sidecar = Sidecar.from_json((folder / SIDECAR).read_text(encoding="utf-8"), str(folder / SIDECAR))
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"{folder}: no readable {SIDECAR}: not a fer_core export ({exc})") from None
    if sidecar.format != "onnx":
        raise ExportError(f"{folder}: a {sidecar.format} export; ONNX Runtime runs ONNX exports only")
    file = folder / sidecar.file
    try:
        digest = file_digest(file)
    except OSError as exc:
        raise ExportError(f"{file}: cannot read it ({exc})") from None
    if digest != sidecar.sha256:
        raise ExportError(f"{file}: not the file that was exported (its SHA-256 differs from the sidecar's)")
    module = OrtModule(file)
    stamped = (module.metadata.get("fer_core.checkpoint_id"), module.metadata.get("fer_core.classes"))
    if stamped != (sidecar.checkpoint_id, json.dumps(list(sidecar.classes))):
        raise ExportError(f"{folder / SIDECAR}: its checkpoint or classes are not the ones inside {sidecar.file} (edited?)")
    return module, sidecar
