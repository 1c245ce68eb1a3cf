"""The checkpoint store: one directory per trained run, written atomically, read without unpickling.

    checkpoints/<id>/model.safetensors        weights (float16 when shipped; see meta["weights_dtype"])
    checkpoints/<id>/meta.json                architecture, classes, config, data, versions, history, metrics
    checkpoints/<id>/predictions.safetensors  test-set probabilities and labels, for instant evaluation views
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError, safe_open

from .models import get_spec

if TYPE_CHECKING:  # torch is imported where tensors are read or written: listing needs only meta.json
    import torch
    from torch import nn

WEIGHTS_FILE = "model.safetensors"
META_FILE = "meta.json"
PREDICTIONS_FILE = "predictions.safetensors"
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, unsafe or does not match its architecture."""


def default_root() -> Path:
    """$FER_CHECKPOINTS, else the repository's checkpoints/ folder."""
    env = os.environ.get("FER_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "checkpoints"


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
    meta: dict | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def read_meta(path: Path) -> dict:
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path.name}: unreadable {META_FILE} ({exc})") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path.name}: {META_FILE} is not an object")
    for key in ("model", "classes", "input"):
        if key not in meta:
            raise CheckpointError(f"{path.name}: {META_FILE} lacks '{key}'")
    try:
        get_spec(meta["model"])
    except KeyError as exc:
        raise CheckpointError(f"{path.name}: {exc.args[0]}") from exc
    if not isinstance(meta["classes"], list) or not meta["classes"] or not all(isinstance(c, str) for c in meta["classes"]):
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
    infos.sort(key=lambda i: (i.meta or {}).get("created_at", ""), reverse=True)
    return infos


def load_weights(path: Path, meta: dict) -> nn.Module:
    """Build the registered architecture and load the safetensors weights into it, strictly."""
    from safetensors.torch import load_file

    spec = get_spec(meta["model"])
    model = spec.build(len(meta["classes"]))
    file = path / WEIGHTS_FILE
    try:
        state = load_file(str(file))
    except (OSError, SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: corrupt or missing {WEIGHTS_FILE} ({exc})") from exc
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise CheckpointError(f"{path.name}: weights do not match architecture {meta['model']}: {' '.join(first)}") from exc
    return model.eval()


def load_predictions(path: Path) -> dict:
    """{'probs': (N,C) float32, 'labels': (N,), 'names': [...], 'split': str}."""
    from safetensors.torch import load_file

    file = path / PREDICTIONS_FILE
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(file))
    except (OSError, SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: corrupt or missing {PREDICTIONS_FILE} ({exc})") from exc
    return {
        "probs": tensors["probs"].float(),
        "labels": tensors["labels"].long(),
        "names": json.loads(meta.get("names", "[]")),
        "split": meta.get("split", "test"),
        "data_fingerprint": meta.get("data_fingerprint", ""),
    }


def meta_json(meta: dict) -> str:
    """meta.json's text: indented, but one line per epoch of history (a 400-epoch run is 400 lines, not 5,000)."""
    fields = []
    for key in sorted(meta):
        value = meta[key]
        if key == "history" and isinstance(value, list) and value:
            body = "[\n" + ",\n".join("    " + json.dumps(row, sort_keys=True) for row in value) + "\n  ]"
        else:
            body = json.dumps(value, indent=2, sort_keys=True).replace("\n", "\n  ")
        fields.append(f"  {json.dumps(key)}: {body}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def new_checkpoint_id(model: str, labels: str, root: Path) -> str:
    base = f"{model}-{labels}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, n = base, 1
    while (root / candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def save_checkpoint(
    state: dict[str, torch.Tensor],
    meta: dict,
    probs: torch.Tensor,
    labels: torch.Tensor,
    names: list[str],
    split: str = "test",
    root: Path | None = None,
    checkpoint_id: str | None = None,
) -> Path:
    """Write a complete checkpoint atomically: a temp dir in the same root, renamed into place at the end.

    A crash or a full disk leaves at most a `.tmp-*` directory (ignored by listing); an existing
    checkpoint is never overwritten.
    """
    from safetensors.torch import save_file

    root = Path(root or default_root())
    root.mkdir(parents=True, exist_ok=True)
    cid = checkpoint_id or new_checkpoint_id(meta["model"], meta.get("data", {}).get("label_source", "fer2013"), root)
    final = checkpoint_dir(cid, root)
    if final.exists():
        raise CheckpointError(f"checkpoint {cid} already exists")
    meta = {**meta, "id": cid, "weights_dtype": "float16"}
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{cid}-", dir=root))
    try:
        save_file(_half(state), str(tmp / WEIGHTS_FILE))
        save_file(
            {"probs": probs.float().contiguous(), "labels": labels.long().contiguous()},
            str(tmp / PREDICTIONS_FILE),
            metadata={"names": json.dumps(list(names)), "split": split, "data_fingerprint": meta.get("data", {}).get("fingerprint", "")},
        )
        (tmp / META_FILE).write_text(meta_json(meta), encoding="utf-8")
        for f in tmp.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


ANNOTATIONS = ("card", "efficiency")  # what may be added to a checkpoint after training


def annotate_checkpoint(checkpoint_id: str, root: Path | None = None, **fields) -> dict:
    """Add a model card or re-measured efficiency to meta.json (atomic replace); training facts stay untouched."""
    bad = [k for k in fields if k not in ANNOTATIONS]
    if bad:
        raise CheckpointError(f"only {', '.join(ANNOTATIONS)} can be added to a checkpoint, not {', '.join(bad)}")
    path = checkpoint_dir(checkpoint_id, root)
    meta = {**read_meta(path), **fields}
    tmp = path / f".{META_FILE}.tmp"
    tmp.write_text(meta_json(meta), encoding="utf-8")
    os.replace(tmp, path / META_FILE)
    return meta


def delete_checkpoint(checkpoint_id: str, root: Path | None = None) -> None:
    path = checkpoint_dir(checkpoint_id, root)
    if not (path / META_FILE).exists():
        raise CheckpointError(f"no checkpoint {checkpoint_id!r}")
    trash = path.with_name(f".tmp-deleting-{checkpoint_id}")
    os.rename(path, trash)  # disappears from listings at once, even if removal is slow
    shutil.rmtree(trash, ignore_errors=True)
