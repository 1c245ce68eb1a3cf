"""Everything the pages read, cached once per process.

Cache keys include the store's signature (checkpoint ids and meta.json mtimes), so a new or deleted
checkpoint refreshes every page without restarting the app, while switching pages never reloads a
model from disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from fer_core.leaderboard import leaderboard_row
from fer_core.store import CheckpointInfo, default_root, list_checkpoints, load_predictions

# Modules that import torch are imported inside the functions that need them: the Overview's
# leaderboard is drawn from meta.json files before torch (seconds on a small CPU) is loaded.
if TYPE_CHECKING:
    from fer_core.classifier import FerClassifier
    from fer_core.data import DatasetOverview, FerData
    from fer_core.explain import FaceEmbedding
    from fer_core.predict import PhotoPrediction


def store_root() -> Path:
    return default_root()


def store_signature() -> tuple:
    """Cheap fingerprint of the store: changes when a checkpoint is added, removed or rewritten."""
    root = store_root()
    if not root.is_dir():
        return ()
    sig = []
    for d in sorted(root.iterdir()):
        meta = d / "meta.json"
        if d.is_dir() and not d.name.startswith(".") and meta.exists():
            sig.append((d.name, meta.stat().st_mtime_ns))
    return tuple(sig)


@st.cache_data(show_spinner=False)
def _checkpoints(signature: tuple) -> list[CheckpointInfo]:
    return list_checkpoints(store_root())


def checkpoints() -> list[CheckpointInfo]:
    """All checkpoints (broken ones included, with their error)."""
    return _checkpoints(store_signature())


def good_checkpoints() -> list[CheckpointInfo]:
    return [c for c in checkpoints() if c.ok]


def require_checkpoints() -> list[CheckpointInfo]:
    """The usable checkpoints; stops the page with a hint when there are none."""
    good = good_checkpoints()
    if not good:
        st.info("No trained models yet: train one from the sidebar first.")
        st.stop()
    return good


def leaderboard() -> list[dict]:
    return [leaderboard_row(c.meta) for c in good_checkpoints()]


@st.cache_resource(show_spinner="Loading model…", max_entries=64)
def _classifier(checkpoint_id: str, signature: tuple) -> FerClassifier:
    from fer_core.classifier import load_checkpoint

    return load_checkpoint(checkpoint_id, root=store_root())


def classifier(checkpoint_id: str) -> FerClassifier:
    sig = next((s for s in store_signature() if s[0] == checkpoint_id), (checkpoint_id, 0))
    return _classifier(checkpoint_id, sig)


@st.cache_data(show_spinner=False, max_entries=64)
def _evaluation(checkpoint_id: str, signature: tuple) -> dict:
    from fer_core.evaluation import compute_metrics

    info = next(c for c in good_checkpoints() if c.id == checkpoint_id)
    pred = load_predictions(info.path)
    probs, labels = pred["probs"].numpy(), pred["labels"].numpy()
    return {"probs": probs, "labels": labels, "names": pred["names"], "metrics": compute_metrics(probs, labels, info.meta["classes"])}


def evaluation(checkpoint_id: str) -> dict:
    """Stored test predictions and every metric computed from them (no model is run)."""
    sig = next((s for s in store_signature() if s[0] == checkpoint_id), (checkpoint_id, 0))
    return _evaluation(checkpoint_id, sig)


def default_dataset_path() -> str:
    from fer_core.data import find_default_dataset

    found = find_default_dataset()
    return str(found) if found else ""


@st.cache_resource(show_spinner="Loading dataset (the first time decodes every image)…", max_entries=4)
def dataset(path: str, labels: str = "fer2013") -> FerData:
    from fer_core.data import load_dataset

    return load_dataset(path, labels=labels)


@st.cache_data(show_spinner="Summarising dataset (the first time loads every image)…", max_entries=4)
def dataset_overview(path: str, labels: str = "fer2013") -> DatasetOverview:
    from fer_core.data.overview import dataset_overview

    return dataset_overview(path, labels)


def dataset_for(meta: dict) -> FerData | None:
    """The dataset a checkpoint was trained on, if it is where we can find it, else None."""
    path = default_dataset_path()
    if not path:
        return None
    data = dataset(path, meta["data"]["label_source"])
    if tuple(data.classes) != tuple(meta["classes"]):
        data = data.with_classes(meta["classes"])
    return data


def faces_by_name(data: FerData) -> dict[str, int]:
    return {n: i for i, n in enumerate(data.names)}


# Each entry holds the decoded photo: 32 keeps the cache under ~100 MB for 720p photos.
@st.cache_data(show_spinner="Finding faces and predicting…", max_entries=32)
def photo_prediction(data: bytes, checkpoint_ids: tuple[str, ...], detector: str, name: str, signature: tuple) -> PhotoPrediction:
    """Cached per (file bytes, models, detector): reruns of the page do not predict again."""
    from fer_core.predict import predict_photo

    return predict_photo([classifier(i) for i in checkpoint_ids], data, detector=detector, name=name)


def predict(data: bytes, checkpoint_ids: list[str], detector: str, name: str) -> PhotoPrediction:
    return photo_prediction(data, tuple(checkpoint_ids), detector, name, store_signature())


@st.cache_data(show_spinner="Computing penultimate-layer features and t-SNE…", max_entries=16)
def embedding(checkpoint_id: str, n: int, signature: tuple) -> FaceEmbedding:
    from fer_core.explain import embed_test_faces

    clf = classifier(checkpoint_id)
    return embed_test_faces(clf, dataset_for(clf.meta), n)
