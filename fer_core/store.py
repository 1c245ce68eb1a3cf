"""The checkpoint store: one directory per trained run, written atomically, read without unpickling.

checkpoints/<id>/model.safetensors        weights in float16 (CheckpointMeta.weights_dtype)
checkpoints/<id>/meta.json                a CheckpointMeta (records.py): architecture, classes, config, data, history, metrics
checkpoints/<id>/predictions.safetensors  test-set probabilities of the float16 weights, for instant evaluation views
checkpoints/shipped.txt                   ids that ship with the repository: the app hides them, never deletes them
checkpoints/.hidden.json                  ids the user hid (out of the leaderboard, pickers and ensembles)
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors import SafetensorError, safe_open

from .atomic import write_atomically, write_text_atomically
from .models import get_spec
from .records import CheckpointMeta, Efficiency, Predictions, TestMetrics
from .repository import REPO

if TYPE_CHECKING:  # torch is imported where tensors are read or written: listing needs only meta.json
    import torch
    from torch import nn

    from .data import FerData

WEIGHTS_FILE = "model.safetensors"
META_FILE = "meta.json"
PREDICTIONS_FILE = "predictions.safetensors"
SHIPPED_FILE = "shipped.txt"
HIDDEN_FILE = ".hidden.json"
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, unsafe or does not match its architecture."""


class CheckpointExists(CheckpointError):
    """A checkpoint of that id is already in the store (writes never replace one)."""


_REPOSITORY_STORE = REPO / "checkpoints"


def default_root() -> Path:
    """$FER_CHECKPOINTS, else the repository's checkpoints/ folder."""
    env = os.environ.get("FER_CHECKPOINTS")
    return Path(env) if env else _REPOSITORY_STORE


def checkpoint_dir(checkpoint_id: str, root: Path | None = None) -> Path:
    """The directory of a checkpoint id; ids are plain names, and symlinks may not lead outside the root."""
    root = Path(root or default_root())
    if not isinstance(checkpoint_id, str) or not _ID_PATTERN.match(checkpoint_id) or ".." in checkpoint_id:
        raise CheckpointError(f"invalid checkpoint id {checkpoint_id!r}")
    path = root / checkpoint_id
    real_root = root.resolve()
    if not path.resolve().is_relative_to(real_root):
        raise CheckpointError(f"checkpoint {checkpoint_id!r} points outside {root}")
    return path


def resolve_checkpoint(id_or_path: str | Path, root: Path | None = None) -> Path:
    """An id inside the store, or an explicit directory given by the user (CLI / notebook)."""
    text = str(id_or_path)
    if isinstance(id_or_path, Path) or os.sep in text or "/" in text:
        path = Path(text).expanduser()
    else:
        path = checkpoint_dir(text, root)
    if not (path / META_FILE).is_file():
        raise CheckpointError(f"{text}: no checkpoint there (missing {META_FILE})")
    return path


@dataclass(frozen=True)
class CheckpointInfo:
    id: str
    path: Path
    meta: CheckpointMeta | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def read_meta(path: Path) -> CheckpointMeta:
    """meta.json as a CheckpointMeta; a missing, unreadable or unknown-architecture file is a CheckpointError."""
    try:
        raw = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path.name}: unreadable {META_FILE} ({exc})") from exc
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path.name}: {META_FILE} is not an object")
    raw.setdefault("id", path.name)
    try:
        meta = CheckpointMeta.from_json(raw)
    except KeyError as exc:
        raise CheckpointError(f"{path.name}: {META_FILE} lacks '{exc.args[0]}'") from exc
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: {META_FILE} does not fit this version ({exc})") from exc
    try:
        get_spec(meta.model)
    except KeyError as exc:
        raise CheckpointError(f"{path.name}: {exc.args[0]}") from exc
    if not meta.classes or not all(isinstance(c, str) for c in meta.classes):
        raise CheckpointError(f"{path.name}: 'classes' must be a non-empty list of names")
    return meta


def list_checkpoints(root: Path | None = None) -> list[CheckpointInfo]:
    """Every checkpoint directory, newest first; broken ones are listed with their error, not hidden."""
    root = Path(root or default_root())
    if not root.is_dir():
        return []
    infos = []
    for d in sorted(root.iterdir()):
        if not d.is_dir() or d.name.startswith(".") or not (d / META_FILE).exists():
            continue
        try:
            checkpoint_dir(d.name, root)
            infos.append(CheckpointInfo(d.name, d, read_meta(d)))
        except CheckpointError as exc:
            infos.append(CheckpointInfo(d.name, d, None, str(exc)))
    infos.sort(key=lambda i: i.meta.created_at if i.meta else "", reverse=True)
    return infos


def load_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """`model.load_state_dict(state)`, strictly, each tensor cast to the model's dtype. safetensors files (and dicts built
    from them) lack PyTorch's per-module version metadata, which some modules require on load (torchvision's MNASNet):
    these weights were written by this code, so the model's own versions are theirs."""
    reference = model.state_dict()
    versioned = OrderedDict((k, v.to(reference[k].dtype) if k in reference else v) for k, v in state.items())
    versioned._metadata = reference._metadata  # type: ignore[attr-defined]  # set by Module.state_dict
    model.load_state_dict(versioned, strict=True)


def load_weights(path: Path, meta: CheckpointMeta) -> nn.Module:
    """Build the registered architecture and load the safetensors weights into it, strictly."""
    from safetensors.torch import load_file

    model = get_spec(meta.model).build(len(meta.classes), **meta.config.architecture())
    file = path / WEIGHTS_FILE
    try:
        state = load_file(str(file))
    except (OSError, SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: corrupt or missing {WEIGHTS_FILE} ({exc})") from exc
    try:
        load_state(model, state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise CheckpointError(f"{path.name}: weights do not match architecture {meta.model}: {' '.join(first)}") from exc
    return model.eval()


def dataset_for(meta: CheckpointMeta, path: str | Path) -> FerData:
    """The dataset at `path` as the checkpoint saw it: its label source, classes and split options (the fingerprint
    then tells whether it is the data the checkpoint was trained on)."""
    from .data import load_dataset  # torch: not on the app's first page, which lists the store

    return load_dataset(
        path, labels=meta.data.label_source, classes=meta.classes, val_fraction=meta.config.val_fraction, seed=meta.seed
    ).with_train_fraction(meta.config.train_fraction)


def load_predictions(path: Path, meta: CheckpointMeta | None = None) -> Predictions:
    """The test-set predictions stored with a checkpoint (numpy arrays); the classes come from its meta.json, read
    here unless the caller already holds it."""
    return read_predictions(path / PREDICTIONS_FILE, (meta or read_meta(path)).classes)[0]


def read_predictions(file: Path, classes: tuple[str, ...] | None = None) -> tuple[Predictions, dict[str, str]]:
    """Predictions saved by `save_predictions`, and the file's other metadata; `classes` where the file does not
    name them (files written before it did)."""
    from safetensors.numpy import load_file

    try:
        with safe_open(str(file), framework="numpy") as f:
            stored = f.metadata() or {}
        tensors = load_file(str(file))
        named = tuple(json.loads(stored["classes"])) if "classes" in stored else classes
    except (OSError, SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{file.parent.name}: corrupt or missing {file.name} ({exc})") from exc
    if named is None:
        raise CheckpointError(f"{file}: names no classes")
    predictions = Predictions(
        probs=tensors["probs"].astype(np.float32),
        labels=tensors["labels"].astype(np.int64),
        names=tuple(json.loads(stored.get("names", "[]"))),
        classes=named,
        split=stored.get("split", "test"),
        data_fingerprint=stored.get("data_fingerprint", ""),
    )
    return predictions, {k: v for k, v in stored.items() if k not in ("names", "classes", "split", "data_fingerprint")}


def save_predictions(file: Path, predictions: Predictions, extra: dict[str, str] | None = None) -> None:
    """Probabilities, labels, face names and classes in one safetensors file (atomic), with `extra` metadata."""
    from safetensors.numpy import save_file

    tensors: dict[str, np.ndarray] = {
        "probs": np.ascontiguousarray(predictions.probs, np.float32),
        "labels": np.ascontiguousarray(predictions.labels, np.int64),
    }
    metadata = {
        **(extra or {}),
        "names": json.dumps(list(predictions.names)),
        "classes": json.dumps(list(predictions.classes)),
        "split": predictions.split,
        "data_fingerprint": predictions.data_fingerprint,
    }
    write_atomically(file, lambda f: save_file(tensors, f, metadata=metadata))


def meta_json(meta: CheckpointMeta) -> str:
    """meta.json's text: indented, but one line per epoch of history (a 400-epoch run is 400 lines, not 5,000)."""
    obj = meta.to_json()
    lines = []
    for key in sorted(obj):
        value = obj[key]
        if key == "history" and isinstance(value, (list, tuple)) and value:
            body = "[\n" + ",\n".join("    " + json.dumps(row, sort_keys=True) for row in value) + "\n  ]"
        else:
            body = json.dumps(value, indent=2, sort_keys=True).replace("\n", "\n  ")
        lines.append(f"  {json.dumps(key)}: {body}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def half_precision(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights as the store keeps them (float16): predictions and metrics are computed from exactly these."""
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def new_checkpoint_id(model: str, labels: str, root: Path) -> str:
    """<model>-<labels>-<time>, a folder name on every OS: "timm:convnext_atto@96" is spelt timm-convnext_atto-96."""
    base = f"{re.sub(r'[^A-Za-z0-9._-]', '-', model)}-{labels}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, n = base, 1
    while (root / candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def save_checkpoint(
    state: dict[str, torch.Tensor],
    meta: CheckpointMeta,
    predictions: Predictions,
    root: Path | None = None,
    checkpoint_id: str | None = None,
) -> Path:
    """Write a complete checkpoint atomically: a temp dir in the same root, renamed into place at the end.

    `state` is saved in float16 (see `half_precision`); `predictions` must come from those weights. A crash or
    a full disk leaves at most a `.tmp-*` directory (ignored by listing); an existing checkpoint is never
    overwritten.
    """
    from safetensors.torch import save_file

    root = Path(root or default_root())
    root.mkdir(parents=True, exist_ok=True)
    cid = checkpoint_id or new_checkpoint_id(meta.model, meta.data.label_source, root)
    final = checkpoint_dir(cid, root)
    if final.exists():
        raise CheckpointExists(f"checkpoint {cid} already exists")
    meta = replace(meta, id=cid, weights_dtype="float16")
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{cid}-", dir=root))
    try:
        write_atomically(tmp / WEIGHTS_FILE, lambda file: save_file(half_precision(state), file))
        save_predictions(tmp / PREDICTIONS_FILE, predictions)
        write_text_atomically(tmp / META_FILE, meta_json(meta))
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def annotate_checkpoint(
    checkpoint_id: str, root: Path | None = None, *, card: str | None = None, efficiency: Efficiency | None = None
) -> CheckpointMeta:
    """Add a model card or re-measured efficiency to meta.json (atomic replace); training facts stay untouched."""
    path = checkpoint_dir(checkpoint_id, root)
    meta = read_meta(path)
    meta = replace(meta, card=meta.card if card is None else card, efficiency=efficiency or meta.efficiency)
    write_text_atomically(path / META_FILE, meta_json(meta))
    return meta


def replace_test_predictions(
    checkpoint_id: str, predictions: Predictions, metrics: TestMetrics, root: Path | None = None
) -> CheckpointMeta:
    """Store new test predictions and their metrics (re-derived from the weights as saved); each file is
    replaced atomically, predictions first, so meta.json never describes predictions that are not there."""
    path = checkpoint_dir(checkpoint_id, root)
    meta = read_meta(path)
    if predictions.classes != meta.classes:
        raise CheckpointError(f"{checkpoint_id} predicts {list(meta.classes)}, not {list(predictions.classes)}")
    save_predictions(path / PREDICTIONS_FILE, predictions)
    meta = replace(meta, test_metrics=metrics)
    write_text_atomically(path / META_FILE, meta_json(meta))
    return meta


def shipped_checkpoints(root: Path | None = None) -> frozenset[str]:
    """The ids listed in the root's shipped.txt (one per line): the checkpoints the repository ships."""
    try:
        text = (Path(root or default_root()) / SHIPPED_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return frozenset()
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def hidden_checkpoints(root: Path | None = None) -> frozenset[str]:
    """The ids the user hid; an unreadable file hides nothing (hiding is a view setting, never data)."""
    try:
        ids = json.loads((Path(root or default_root()) / HIDDEN_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return frozenset()
    return frozenset(i for i in ids if isinstance(i, str)) if isinstance(ids, list) else frozenset()


def set_hidden(checkpoint_ids: Iterable[str], hidden: bool, root: Path | None = None) -> frozenset[str]:
    """Hide or show checkpoints (one atomic rewrite of .hidden.json: a whole study's at once); returns the hidden ids."""
    root = Path(root or default_root())
    changed = {checkpoint_dir(cid, root).name for cid in checkpoint_ids}  # valid ids, inside the root
    before = hidden_checkpoints(root)
    ids = (before | changed) if hidden else (before - changed)
    write_text_atomically(root / HIDDEN_FILE, json.dumps(sorted(ids), indent=1) + "\n")
    return ids


def delete_checkpoint(checkpoint_id: str, root: Path | None = None) -> None:
    """Remove a checkpoint the user trained; the repository's own (shipped.txt) can only be hidden."""
    if checkpoint_id in shipped_checkpoints(root):
        raise CheckpointError(f"{checkpoint_id} ships with the workbench: hide it instead")
    path = checkpoint_dir(checkpoint_id, root)
    if not (path / META_FILE).exists():
        raise CheckpointError(f"no checkpoint {checkpoint_id!r}")
    trash = path.with_name(f".tmp-deleting-{checkpoint_id}")
    os.rename(path, trash)  # disappears from listings at once, even if removal is slow
    shutil.rmtree(trash, ignore_errors=True)
    if checkpoint_id in hidden_checkpoints(root):
        set_hidden([checkpoint_id], False, root)


def package_checkpoint(checkpoint_id: str, root: Path | None = None) -> bytes:
    """A checkpoint as one zip to download: weights, meta.json, stored predictions and the model card as Markdown."""
    path = checkpoint_dir(checkpoint_id, root)
    meta = read_meta(path)
    card = f"# {meta.id}\n\n{meta.model} trained on {meta.data.label_source} ({len(meta.classes)} classes).\n"
    card += f"PrivateTest accuracy {meta.test_metrics.accuracy:.2%}, macro F1 {meta.test_metrics.macro_f1:.3f}.\n\n{meta.card}\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:  # safetensors do not compress
        for name in (WEIGHTS_FILE, META_FILE, PREDICTIONS_FILE):
            zf.write(path / name, f"{meta.id}/{name}")
        zf.writestr(f"{meta.id}/MODEL_CARD.md", card)
    return buffer.getvalue()
