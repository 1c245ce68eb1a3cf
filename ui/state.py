"""Everything the pages read, cached once per process.

Cache keys include the store's signature (checkpoint ids and meta.json mtimes), so a new or deleted
checkpoint refreshes every page without restarting the app, while switching pages never reloads a
model from disk.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import streamlit as st

from fer_core import store
from fer_core.atomic import write_text_atomically
from fer_core.leaderboard import LeaderboardRow, default_ensemble, ensemble_row, leaderboard_row, row_from_json
from fer_core.naming import display_names
from fer_core.records import CheckpointMeta, Predictions
from fer_core.store import (
    HIDDEN_FILE,
    CheckpointError,
    CheckpointInfo,
    default_root,
    delete_checkpoint,
    hidden_checkpoints,
    list_checkpoints,
    load_predictions,
    package_checkpoint,
    shipped_checkpoints,
)

# Modules that import torch are imported inside the functions that need them: the Overview's
# leaderboard is drawn from meta.json files before torch (seconds on a small CPU) is loaded.
if TYPE_CHECKING:
    import numpy as np

    from fer_core.backends import BackendSpeed
    from fer_core.classifier import FerClassifier
    from fer_core.data import DatasetOverview, FerData
    from fer_core.evaluation import EnsembleResult, Metrics, Mistake, Standing
    from fer_core.explain import Attribution, FaceEmbedding
    from fer_core.external import ExternalData, ExternalResult
    from fer_core.predict import PhotoPrediction
    from fer_core.studies.report import StudyReport
    from fer_core.video import LiveRecognizer


def store_root() -> Path:
    return default_root()


def store_signature() -> tuple:
    """Cheap fingerprint of the store: changes when a checkpoint is added, removed, rewritten, hidden or shown.

    One scandir and one stat per checkpoint, with no pathlib: it is called ~170 times in a rerun of Predict
    (every picker's format_func through `name`), where the pathlib version cost ~55 ms and this one ~20 ms.
    """
    root = str(store_root())
    try:
        with os.scandir(root) as entries:
            names = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
    except OSError:
        return ()
    sig = [(n, mtime) for n in names if (mtime := _mtime_ns(os.path.join(root, n, "meta.json"))) is not None]
    if (mtime := _mtime_ns(os.path.join(root, HIDDEN_FILE))) is not None:
        sig.append((HIDDEN_FILE, mtime))
    return tuple(sig)


def _mtime_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


@st.cache_data(show_spinner=False)
def _checkpoints(signature: tuple) -> list[CheckpointInfo]:
    return list_checkpoints(store_root())


@st.cache_data(show_spinner=False)
def _hidden(signature: tuple) -> frozenset[str]:
    return hidden_checkpoints(store_root())


# lru_cache, not st.cache_data: `name` is every picker's format_func, called for each option several times per
# rerun (st.cache_data's hashing was ~1 ms a call).
@functools.lru_cache(maxsize=1)
def _names(signature: tuple) -> dict[str, str]:
    metas = (c.meta for c in _checkpoints(signature) if c.meta is not None)
    return display_names(metas, keep=shipped_checkpoints(store_root()))  # hidden ones too: names stay put


def checkpoints() -> list[CheckpointInfo]:
    """All checkpoints (broken and hidden ones included, broken ones with their error)."""
    return _checkpoints(store_signature())


def hidden() -> frozenset[str]:
    """The ids the user hid: out of the leaderboard, the pickers and the ensembles (Overview shows them again)."""
    return _hidden(store_signature())


SHOW_TRIALS = "show_study_trials"  # the sidebar toggle's key (workbench.py)


def study_trials() -> list[str]:
    """The usable, shown checkpoints that are study trials: dozens after a week of studies, most of them short
    runs, so the leaderboard, Predict, Explain, Evaluate and Failures leave them out unless the user shows them."""
    return [c.id for c in good_checkpoints(trials=True) if c.meta is not None and c.meta.study is not None]


def good_checkpoints(trials: bool | None = None) -> list[CheckpointInfo]:
    """The usable checkpoints the user has not hidden; study trials only with `trials`, by default while the
    sidebar's "Show study trials" is on."""
    hidden_ids = hidden()
    show = st.session_state.get(SHOW_TRIALS, False) if trials is None else trials
    return [
        c for c in checkpoints() if c.ok and c.id not in hidden_ids and (show or (c.meta is not None and c.meta.study is None))
    ]


def name(checkpoint_id: str) -> str:
    """A checkpoint's short display name (fer_core.naming); its id where it has none (a broken checkpoint)."""
    return _names(store_signature()).get(checkpoint_id, checkpoint_id)


def ids_help(checkpoint_ids: list[str], note: str = "") -> str:
    """A checkpoint picker's help: its note, then each option's display name with its id. Streamlit's pickers
    have no per-option tooltip, and the id is what the CLI, the exports and the store folders use."""
    names = _names(store_signature())
    rows = "\n".join(f"- {names.get(cid, cid)}: `{cid}`" for cid in checkpoint_ids)
    return f"{note}\n\n" * bool(note) + f"Checkpoint ids:\n\n{rows}"


class PageEnd(Exception):
    """Raised by end_page; workbench.py catches it."""


def end_page() -> NoReturn:
    """End the page script here and still draw the sidebar: after st.stop() every later st call stops again, so
    a page that stopped that way lost the glossary and the training panel drawn after it."""
    raise PageEnd


DEFERRED_KEY = "after_drawing"


def after_drawing(job: Callable[[], object]) -> None:
    """Run `job` once the page and the sidebar are drawn (workbench.py calls run_deferred): slow work that
    prepares the next interaction, such as loading Predict's models before the first photo."""
    st.session_state.setdefault(DEFERRED_KEY, []).append(job)


def run_deferred() -> None:
    for job in st.session_state.pop(DEFERRED_KEY, []):
        with contextlib.suppress(ValueError, OSError, RuntimeError):  # preparation only: the real call reports it
            job()
    if gc.get_freeze_count() == 0 and "torch" in sys.modules:
        _freeze_long_lived()


def _freeze_long_lived() -> None:
    """Once per process, at the end of the first run that loaded torch (and on Predict its models): move every
    live object into the collector's permanent generation. Streamlit runs a full collection after each script
    run, and Python one now and then; with torch, Streamlit and the models loaded it walked ~490k objects in
    ~300 ms on the script thread, which the next interaction waited for; after the freeze 20-90 ms
    (bench/RESULTS.md, "The app"). Collected first, so no garbage is frozen; objects made later are collected
    as before."""
    gc.collect()
    gc.freeze()


def require_checkpoints() -> list[CheckpointInfo]:
    """The usable checkpoints; stops the page with a hint when there are none."""
    good = good_checkpoints()
    if not good:
        st.info("No trained models yet: train one from the sidebar first.")
        end_page()
    return good


def metas(trials: bool | None = None) -> dict[str, CheckpointMeta]:
    """The usable, shown checkpoints' meta.json, by id (study trials as good_checkpoints says)."""
    return {c.id: c.meta for c in good_checkpoints(trials) if c.meta is not None}


def leaderboard() -> list[LeaderboardRow]:
    return [leaderboard_row(meta) for meta in metas().values()]


# The default ensemble's line, kept in the store as JSON with the store signature it was computed for: a cold
# start then draws it without importing scikit-learn (~1.3 s on a small CPU, bench/RESULTS.md "The app").
ENSEMBLE_LINE_FILE = ".ensemble-line.json"
ENSEMBLE_LINE_VERSION = 2  # 2: the ensemble's epochs are its members' together (1 had none)


@st.cache_data(show_spinner=False)
def _ensemble_line(signature: tuple) -> LeaderboardRow | None:
    file, key = store_root() / ENSEMBLE_LINE_FILE, json.loads(json.dumps(signature))
    try:
        saved = json.loads(file.read_text(encoding="utf-8"))
        if saved["signature"] == key and saved.get("version") == ENSEMBLE_LINE_VERSION:
            return row_from_json(saved["row"]) if saved["row"] else None
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, another store's, or damaged: computed again
    row = _compute_ensemble_line()
    with contextlib.suppress(OSError):  # a read-only store still shows the line
        write_text_atomically(
            file, json.dumps({"version": ENSEMBLE_LINE_VERSION, "signature": key, "row": asdict(row) if row else None})
        )
    return row


def _compute_ensemble_line() -> LeaderboardRow | None:
    from fer_core.evaluation import EnsembleError, evaluate_ensemble

    meta_of = metas()
    members = default_ensemble(meta_of.values())
    try:
        result = evaluate_ensemble({cid: _predictions(cid, _signature_of(cid)) for cid in members})
    except EnsembleError:  # fewer than two, or tested on other faces: no line
        return None
    return ensemble_row([meta_of[cid] for cid in members], result)


def ensemble_line() -> LeaderboardRow | None:
    """The default ensemble (leaderboard.default_ensemble) as a leaderboard line, from stored predictions."""
    return _ensemble_line(store_signature())


@st.cache_data(show_spinner=False, max_entries=16)
def _standings(signatures: tuple[tuple, ...]) -> dict[str, Standing]:
    from fer_core.evaluation import standings

    return standings({sig[0]: _predictions(sig[0], sig) for sig in signatures})


def standings(checkpoint_ids: list[str]) -> dict[str, Standing]:
    """Each checkpoint's accuracy interval on its test faces and whether the best one's lead over it is noise
    (fer_core.evaluation.standings), among the checkpoints given."""
    return _standings(tuple(_signature_of(cid) for cid in checkpoint_ids))


def shipped() -> frozenset[str]:
    return shipped_checkpoints(store_root())


def set_hidden(checkpoint_ids: list[str], hidden: bool) -> None:
    """Hide (True) or show again (False) checkpoints: out of or back into the leaderboard, pickers and ensembles."""
    store.set_hidden(checkpoint_ids, hidden, store_root())


def delete(checkpoint_ids: list[str]) -> None:
    """Delete user-trained checkpoints; a refusal (shipped, already gone) is kept for the page to show."""
    for checkpoint_id in checkpoint_ids:
        try:
            delete_checkpoint(checkpoint_id, store_root())
        except CheckpointError as exc:
            st.session_state["delete_error"] = str(exc)


@st.cache_resource(show_spinner="Loading model…", max_entries=64)
def _classifier(checkpoint_id: str, signature: tuple, backend: str = "torch") -> FerClassifier:
    from fer_core.classifier import load_checkpoint

    return load_checkpoint(checkpoint_id, root=store_root(), backend=backend)


def classifier(checkpoint_id: str, backend: str = "torch") -> FerClassifier:
    return _classifier(checkpoint_id, _signature_of(checkpoint_id), backend)


# lru_cache, not st.cache_data: predict_backends asks for every chosen model on every rerun of Predict, and
# st.cache_data's hashing of the arguments cost ~6 ms a rerun for ten models.
@functools.lru_cache(maxsize=256)
def _speed_file(root: Path, checkpoint_id: str, signature: tuple) -> Path:
    from fer_core.backends import speed_file

    return speed_file(root / checkpoint_id, metas()[checkpoint_id])  # hashes the weights: once per checkpoint


@functools.lru_cache(maxsize=256)
def _faster_backend(root: Path, checkpoint_id: str, signature: tuple, measured_ns: int) -> str:
    from fer_core.backends import faster_backend

    return faster_backend(root / checkpoint_id, metas()[checkpoint_id])


def predict_backends(checkpoint_ids: list[str]) -> dict[str, str]:
    """Each model's backend for Predict: ONNX Runtime where this machine measured it faster (measure_backends)."""
    root, signatures = store_root(), dict(store_signature())
    out = {}
    for cid in checkpoint_ids:
        signature = (cid, signatures.get(cid, 0))
        file = _speed_file(root, cid, signature)
        out[cid] = _faster_backend(root, cid, signature, _mtime_ns(str(file)) or 0)  # new figures: new key
    return out


def measure_backends(checkpoint_ids: list[str]) -> dict[str, BackendSpeed]:
    """Export (parity-checked) and time PyTorch against ONNX Runtime for each model, on this machine."""
    from fer_core.backends import measure_backends as measure

    return {cid: measure(store_root() / cid, metas()[cid]) for cid in checkpoint_ids}


def _signature_of(checkpoint_id: str) -> tuple:
    return checkpoint_id, dict(store_signature()).get(checkpoint_id, 0)


def checkpoint_package(checkpoint_id: str) -> bytes:
    """The checkpoint as a zip (weights, meta.json, predictions, card): made when the download is clicked."""
    return package_checkpoint(checkpoint_id, store_root())


@st.cache_data(show_spinner="Exporting to ONNX and checking it against PyTorch on test faces…", max_entries=8)
def _onnx_package(checkpoint_id: str, data: str, signature: tuple) -> bytes:
    from fer_core.export import export_zip

    return export_zip(checkpoint_id, store_root(), data or None)


def onnx_package(checkpoint_id: str) -> bytes:
    """The ONNX export and its sidecar as a zip (parity-checked on the default dataset's test faces); cached."""
    return _onnx_package(checkpoint_id, default_dataset_path(), _signature_of(checkpoint_id))


@st.cache_data(show_spinner=False, max_entries=64)
def _predictions(checkpoint_id: str, signature: tuple) -> Predictions:
    return load_predictions(store_root() / checkpoint_id, metas().get(checkpoint_id))


def predictions(checkpoint_id: str) -> Predictions:
    """The test predictions stored with a checkpoint (no model is run)."""
    return _predictions(checkpoint_id, _signature_of(checkpoint_id))


@st.cache_data(show_spinner=False, max_entries=64)
def _metrics(checkpoint_id: str, signature: tuple) -> Metrics:
    from fer_core.evaluation import compute_metrics

    return compute_metrics(_predictions(checkpoint_id, signature))


def metrics(checkpoint_id: str) -> Metrics:
    """Every metric of a checkpoint's stored test predictions."""
    return _metrics(checkpoint_id, _signature_of(checkpoint_id))


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


def found_dataset(meta: CheckpointMeta) -> FerData | None:
    """The dataset a checkpoint was trained on where the app finds it (FER_DATA), else None: cached per path and
    label source, with the checkpoint's classes. Its test split is what the pages read (store.dataset_for applies a
    checkpoint's own split options too)."""
    path = default_dataset_path()
    if not path:
        return None
    data = dataset(path, meta.data.label_source)
    if tuple(data.classes) != meta.classes:
        data = data.with_classes(meta.classes)
    return data


@st.cache_data(show_spinner=False, max_entries=64)
def _mistakes(
    checkpoint_id: str, true_class: str | None, predicted_class: str | None, limit: int, signature: tuple
) -> tuple[int, list[Mistake]] | None:
    from fer_core.evaluation import misclassified_faces

    meta = metas()[checkpoint_id]
    data = found_dataset(meta)
    if data is None:
        return None
    return misclassified_faces(_predictions(checkpoint_id, signature), data, true_class, predicted_class, limit)


def mistakes(
    checkpoint_id: str, true_class: str | None, predicted_class: str | None, limit: int
) -> tuple[int, list[Mistake]] | None:
    """How many test faces the model gets wrong, and the first `limit` with pixels; None without the dataset."""
    return _mistakes(checkpoint_id, true_class, predicted_class, limit, _signature_of(checkpoint_id))


@st.cache_data(show_spinner=False, max_entries=256)
def _attribution(checkpoint_id: str, method: str, face: np.ndarray, target: str | None, signature: tuple) -> Attribution:
    from fer_core.explain import METHODS

    return METHODS[method](_classifier(checkpoint_id, signature), face, target)


def attribution(checkpoint_id: str, method: str, face: np.ndarray, target: str | None) -> Attribution:
    """Grad-CAM or Integrated Gradients of one face, cached: a rerun of Explain recomputes nothing."""
    return _attribution(checkpoint_id, method, face, target, _signature_of(checkpoint_id))


@st.cache_data(show_spinner=False, max_entries=64)
def _feature_layers(checkpoint_id: str, signature: tuple) -> list[str]:
    from fer_core.explain import feature_layers as layers_of

    return layers_of(_classifier(checkpoint_id, signature))


def feature_layers(checkpoint_id: str) -> list[str]:
    return _feature_layers(checkpoint_id, _signature_of(checkpoint_id))


@st.cache_data(show_spinner=False, max_entries=256)
def _feature_grid(checkpoint_id: str, face: np.ndarray, layer: str, max_maps: int, signature: tuple) -> tuple[np.ndarray, tuple]:
    from fer_core.explain import feature_grid, feature_maps

    maps = feature_maps(_classifier(checkpoint_id, signature), face, layer, max_maps)
    return feature_grid(maps), maps.shape


def feature_grid(checkpoint_id: str, face: np.ndarray, layer: str, max_maps: int = 32) -> tuple[np.ndarray, tuple]:
    """A grid image of a layer's most active feature maps, and the maps' shape (channels, h, w); cached."""
    return _feature_grid(checkpoint_id, face, layer, max_maps, _signature_of(checkpoint_id))


@dataclass(frozen=True)
class ShownPhoto:
    """A photo as Predict shows it: its prediction without the decoded image (a phone photo's is ~9 MB, which the
    cache would copy on every rerun), and the photo drawn at display size with its numbered face boxes."""

    prediction: PhotoPrediction
    drawn_jpeg: bytes | None  # None when the photo could not be read (prediction.error says why)


@st.cache_data(show_spinner="Finding faces and predicting…", max_entries=32)
def photo_prediction(data: bytes, models: tuple[tuple[str, str], ...], detector: str, name: str, signature: tuple) -> ShownPhoto:
    """Cached per (file bytes, models and their backends, detector): reruns of the page do not predict again."""
    import cv2

    from fer_core.predict import predict_photo

    from .charts import draw_faces

    result = predict_photo([classifier(cid, backend) for cid, backend in models], data, detector=detector, name=name)
    if result.image is None:
        return ShownPhoto(result, None)
    drawn = draw_faces(result.image, [fp.face.box for fp in result.faces], [fp.face.detected for fp in result.faces])
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return ShownPhoto(replace(result, image=None), jpeg.tobytes() if ok else None)


def predict_classifiers(checkpoint_ids: list[str]) -> list[FerClassifier]:
    """The chosen models, each on its faster backend (predict_backends)."""
    return [classifier(cid, backend) for cid, backend in predict_backends(checkpoint_ids).items()]


def live_recognizer(checkpoint_ids: list[str], detector: str) -> LiveRecognizer:
    """This browser session's recognizer for the live stream: its face numbers and timeline are its own, and it
    starts afresh when the models or the detector change."""
    from fer_core.video import LiveRecognizer

    key = (tuple(predict_backends(checkpoint_ids).items()), detector, store_signature())
    held = st.session_state.get("live_recognizer")
    if held is None or held[0] != key:
        held = (key, LiveRecognizer(predict_classifiers(checkpoint_ids), detector))
        st.session_state["live_recognizer"] = held
    return held[1]


@st.cache_data(show_spinner=False, max_entries=64)
def _probability_grid_layout(models: tuple[str, ...], classes: tuple[str, ...]) -> dict:
    from ui.charts import probability_grid

    return probability_grid(models, classes).to_dict()


def probability_grid_spec(per_model: dict[str, dict[str, float]]) -> dict:
    """A face's probability grid as a Vega-Lite spec: its layout built and validated once per models and classes
    (Altair, ~80 ms), the face's probabilities filled in as its named dataset."""
    from ui.charts import GRID_DATA, probability_cells

    classes = tuple(dict.fromkeys(e for probs in per_model.values() for e in probs))
    layout = _probability_grid_layout(tuple(per_model), classes)
    return layout | {"datasets": {GRID_DATA: probability_cells(per_model)}}


def predict(data: bytes, checkpoint_ids: list[str], detector: str, name: str) -> ShownPhoto:
    models = tuple(predict_backends(checkpoint_ids).items())
    return photo_prediction(data, models, detector, name, store_signature())


@st.cache_data(show_spinner="Computing penultimate-layer features and t-SNE…", max_entries=16)
def embedding(checkpoint_id: str, n: int, signature: tuple) -> FaceEmbedding:
    from fer_core.explain import embed_test_faces

    clf = classifier(checkpoint_id)
    data = found_dataset(clf.meta)
    if data is None:
        raise ValueError("the test faces are needed for the embedding: FER2013 was not found (set FER_DATA)")
    return embed_test_faces(clf, data, n)


@st.cache_data(show_spinner="Computing the study's intervals and tests…", max_entries=16)
def _study_report(study_id: str, signature: tuple) -> StudyReport:
    from fer_core.studies.report import study_report

    return study_report(study_id, store_root())


def study_report(study_id: str) -> StudyReport:
    """A study's report, recomputed when a checkpoint or a trial's status changes."""
    from fer_core.studies.runs import read_trials, study_dir

    # by states, not file times: a running trial rewrites its file every few seconds with its batch
    trials = tuple((t.trial, t.state, t.checkpoint) for t in read_trials(study_dir(study_id)).values())
    return _study_report(study_id, (store_signature(), trials))


def _external_signature() -> tuple:
    from fer_core.external import external_root

    folder = external_root(store_root())
    if not folder.is_dir():
        return ()
    return tuple((f.relative_to(folder).as_posix(), f.stat().st_mtime_ns) for f in sorted(folder.glob("*/*.safetensors")))


@st.cache_data(show_spinner=False)
def _external_datasets(signature: tuple) -> dict[str, dict]:
    from fer_core.external import cached_datasets

    return cached_datasets(store_root())


def external_datasets() -> dict[str, dict]:
    """fingerprint -> summary of each dataset of the user's evaluated in this store."""
    return _external_datasets(_external_signature())


def external_names() -> dict[str, str]:
    """fingerprint -> the name a dataset of the user's goes by in tables and pickers (naming.dataset_names)."""
    from fer_core.naming import dataset_names

    return dataset_names(external_datasets())


@st.cache_data(show_spinner=False)
def _external_results(fingerprint: str, signature: tuple) -> dict[str, ExternalResult]:
    from fer_core.external import cached_results

    return cached_results(fingerprint, store_root())


def external_results(fingerprint: str) -> dict[str, ExternalResult]:
    """checkpoint id -> its cached result on that dataset (hidden checkpoints left out)."""
    shown = metas()
    return {cid: r for cid, r in _external_results(fingerprint, _external_signature()).items() if cid in shown}


@st.cache_data(show_spinner=False, max_entries=64)
def _external_metrics(fingerprint: str, checkpoint_id: str, signature: tuple) -> Metrics:
    from fer_core.evaluation import compute_metrics

    return compute_metrics(_external_results(fingerprint, signature)[checkpoint_id].predictions)


def external_metrics(fingerprint: str, checkpoint_id: str) -> Metrics:
    """Every metric of a checkpoint on a dataset of the user's, over the classes they share."""
    return _external_metrics(fingerprint, checkpoint_id, _external_signature())


@st.cache_data(show_spinner=False, max_entries=16)
def _external_standings(fingerprint: str, checkpoint_ids: tuple[str, ...], signature: tuple) -> dict[str, Standing]:
    from fer_core.evaluation import standings

    results = _external_results(fingerprint, signature)
    return standings({cid: results[cid].predictions for cid in checkpoint_ids})


def external_standings(fingerprint: str, checkpoint_ids: list[str]) -> dict[str, Standing]:
    """standings() on a dataset of the user's, among the checkpoints given (each with a result on it)."""
    return _external_standings(fingerprint, tuple(checkpoint_ids), _external_signature())


@st.cache_data(show_spinner=False, max_entries=16)
def _external_ensemble(fingerprint: str, members: tuple[str, ...], signature: tuple) -> EnsembleResult | None:
    from fer_core.evaluation import EnsembleError, evaluate_ensemble

    results = _external_results(fingerprint, signature)
    if not all(cid in results for cid in members):
        return None
    try:
        return evaluate_ensemble({cid: results[cid].predictions for cid in members})
    except EnsembleError:  # fewer than two, or members that saw other faces of it (other class lists)
        return None


def external_ensemble(fingerprint: str) -> EnsembleResult | None:
    """The leaderboard's default ensemble on a dataset of the user's; None until every member has run on it."""
    return _external_ensemble(fingerprint, tuple(default_ensemble(metas().values())), _external_signature())


def evaluate_external(
    source: Path, mapping: dict[str, str] | None, detector: str, checkpoint_ids: list[str], on_progress, on_skip
) -> str:
    """Crop the dataset's faces (or read them from the cache) and run each model on them (each result cached
    on disk); returns the dataset's fingerprint. `on_progress(fraction, message)`."""
    from fer_core.external import external_root, load_external

    data = load_external(
        source,
        mapping,
        detector,
        cache=external_root(store_root()),
        on_progress=lambda done, total: on_progress(0.5 * done / total, f"Finding faces: {done} of {total} images"),
    )
    run_models(data.fingerprint, checkpoint_ids, on_progress, on_skip, data)
    return data.fingerprint


def run_models(fingerprint: str, checkpoint_ids: list[str], on_progress, on_skip, data: ExternalData | None = None) -> None:
    """Run the models that have not seen the dataset yet on its cached faces; a model that cannot be judged on
    it (fewer than two shared classes) is passed to `on_skip` with the reason, and the others still run."""
    from fer_core.data import DataError
    from fer_core.external import cached_data
    from fer_core.external import evaluate_external as evaluate

    data = data or cached_data(fingerprint, store_root())
    for done, cid in enumerate(checkpoint_ids, 1):
        on_progress(0.5 + 0.5 * done / len(checkpoint_ids), f"Running {name(cid)} ({done} of {len(checkpoint_ids)})")
        try:
            evaluate(classifier(cid), data, store_root())
        except DataError as exc:
            on_skip(f"{name(cid)} left out: {exc}")
