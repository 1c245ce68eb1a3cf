"""What the store holds, as the pages read it: the checkpoints and their names, what is shown or hidden, their
stored predictions and metrics, the leaderboard and its ensemble line, loaded models, downloads and study
reports. Cached (ui/cache.py); no model runs here except to load one."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import streamlit as st

from fer_core import store
from fer_core.leaderboard import LeaderboardRow, leaderboard_row, stored_ensemble_line
from fer_core.naming import display_names
from fer_core.records import CheckpointMeta, Predictions
from fer_core.store import CheckpointError, CheckpointInfo

from .cache import checkpoint_signature, mtime_ns, refreshed_by, store_root, store_signature
from .datasets import default_dataset_path

# Modules that import torch are imported inside the functions that need them: the Overview's
# leaderboard is drawn from meta.json files before torch (seconds on a small CPU) is loaded.
if TYPE_CHECKING:
    from pathlib import Path

    from fer_core.backends import BackendSpeed
    from fer_core.classifier import FerClassifier
    from fer_core.evaluation import Metrics, Standing
    from fer_core.studies.report import StudyReport


@refreshed_by(store_signature, st.cache_data(show_spinner=False))
def checkpoints(signature: tuple) -> list[CheckpointInfo]:
    """All checkpoints (broken and hidden ones included, broken ones with their error)."""
    return store.list_checkpoints(store_root())


@refreshed_by(store_signature, st.cache_data(show_spinner=False))
def hidden(signature: tuple) -> frozenset[str]:
    """The ids the user hid: out of the leaderboard, the pickers and the ensembles (Overview shows them again)."""
    return store.hidden_checkpoints(store_root())


# lru_cache, not st.cache_data: `name` is every picker's format_func, called for each option several times per
# rerun (st.cache_data's hashing was ~1 ms a call).
@refreshed_by(store_signature, functools.lru_cache(maxsize=1))
def _names(signature: tuple) -> dict[str, str]:
    metas = (c.meta for c in checkpoints.at(signature) if c.meta is not None)
    return display_names(metas, keep=shipped())  # hidden ones too: names stay put


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
    return _names().get(checkpoint_id, checkpoint_id)


def ids_help(checkpoint_ids: list[str], note: str = "") -> str:
    """A checkpoint picker's help: its note, then each option's display name with its id. Streamlit's pickers
    have no per-option tooltip, and the id is what the CLI, the exports and the store folders use."""
    names = _names()
    rows = "\n".join(f"- {names.get(cid, cid)}: `{cid}`" for cid in checkpoint_ids)
    return f"{note}\n\n" * bool(note) + f"Checkpoint ids:\n\n{rows}"


def metas(trials: bool | None = None) -> dict[str, CheckpointMeta]:
    """The usable, shown checkpoints' meta.json, by id (study trials as good_checkpoints says)."""
    return {c.id: c.meta for c in good_checkpoints(trials) if c.meta is not None}


def shown_signature(*_: object) -> tuple:
    """The store and whether study trials are shown: the key of cached readers over the shown checkpoints (metas),
    so that turning "Show study trials" on or off reads them again."""
    return store_signature(), st.session_state.get(SHOW_TRIALS, False)


def leaderboard() -> list[LeaderboardRow]:
    return [leaderboard_row(meta) for meta in metas().values()]


@refreshed_by(shown_signature, st.cache_data(show_spinner=False))
def ensemble_line(signature: tuple) -> LeaderboardRow | None:
    """The default ensemble (leaderboard.default_ensemble) as a leaderboard line, from stored predictions; kept in
    the store for the state it was computed for, so a cold start draws it without importing scikit-learn."""
    return stored_ensemble_line(store_root(), metas(), predictions, signature)


@refreshed_by(lambda ids: tuple(map(checkpoint_signature, ids)), st.cache_data(show_spinner=False, max_entries=16))
def standings(signature: tuple, checkpoint_ids: list[str]) -> dict[str, Standing]:
    """Each checkpoint's accuracy interval on its test faces and whether the best one's lead over it is noise
    (fer_core.evaluation.standings), among the checkpoints given."""
    from fer_core.evaluation import standings as of

    return of({sig[1]: predictions.at(sig, sig[1]) for sig in signature})


def shipped() -> frozenset[str]:
    return store.shipped_checkpoints(store_root())


def set_hidden(checkpoint_ids: list[str], hidden: bool) -> None:
    """Hide (True) or show again (False) checkpoints: out of or back into the leaderboard, pickers and ensembles."""
    store.set_hidden(checkpoint_ids, hidden, store_root())


def delete(checkpoint_ids: list[str]) -> None:
    """Delete user-trained checkpoints; a refusal (shipped, already gone) is kept for the page to show."""
    for checkpoint_id in checkpoint_ids:
        try:
            store.delete_checkpoint(checkpoint_id, store_root())
        except CheckpointError as exc:
            st.session_state["delete_error"] = str(exc)


@refreshed_by(checkpoint_signature, st.cache_resource(show_spinner="Loading model…", max_entries=64))
def classifier(signature: tuple, checkpoint_id: str, backend: str = "torch") -> FerClassifier:
    from fer_core.classifier import load_checkpoint

    return load_checkpoint(checkpoint_id, root=store_root(), backend=backend)


# lru_cache, not st.cache_data: predict_backends asks for every chosen model on every rerun of Predict, and
# st.cache_data's hashing of the arguments cost ~6 ms a rerun for ten models.
@refreshed_by(checkpoint_signature, functools.lru_cache(maxsize=256))
def _speed_file(signature: tuple, checkpoint_id: str) -> Path:
    from fer_core.backends import speed_file

    return speed_file(store_root() / checkpoint_id, metas()[checkpoint_id])  # hashes the weights: once per checkpoint


def _speed_signature(checkpoint_id: str) -> tuple:
    """The checkpoint and its measured speeds: new figures, a new choice."""
    return checkpoint_signature(checkpoint_id), mtime_ns(str(_speed_file(checkpoint_id)))


@refreshed_by(_speed_signature, functools.lru_cache(maxsize=256))
def _faster_backend(signature: tuple, checkpoint_id: str) -> str:
    from fer_core.backends import faster_backend

    return faster_backend(store_root() / checkpoint_id, metas()[checkpoint_id])


def predict_backends(checkpoint_ids: list[str]) -> dict[str, str]:
    """Each model's backend for Predict: ONNX Runtime where this machine measured it faster (measure_backends)."""
    return {cid: _faster_backend(cid) for cid in checkpoint_ids}


def measure_backends(checkpoint_ids: list[str]) -> dict[str, BackendSpeed]:
    """Export (parity-checked) and time PyTorch against ONNX Runtime for each model, on this machine."""
    from fer_core.backends import measure_backends as measure

    return {cid: measure(store_root() / cid, metas()[cid]) for cid in checkpoint_ids}


def checkpoint_package(checkpoint_id: str) -> bytes:
    """The checkpoint as a zip (weights, meta.json, predictions, card): made when the download is clicked."""
    return store.package_checkpoint(checkpoint_id, store_root())


@refreshed_by(
    lambda checkpoint_id: (checkpoint_signature(checkpoint_id), default_dataset_path()),
    st.cache_data(show_spinner="Exporting to ONNX and checking it against PyTorch on test faces…", max_entries=8),
)
def onnx_package(signature: tuple, checkpoint_id: str) -> bytes:
    """The ONNX export and its sidecar as a zip (parity-checked on the default dataset's test faces)."""
    from fer_core.export import export_zip

    return export_zip(checkpoint_id, store_root(), signature[1] or None)


@refreshed_by(checkpoint_signature, st.cache_data(show_spinner=False, max_entries=64))
def predictions(signature: tuple, checkpoint_id: str) -> Predictions:
    """The test predictions stored with a checkpoint (no model is run)."""
    return store.load_predictions(store_root() / checkpoint_id, metas().get(checkpoint_id))


@refreshed_by(checkpoint_signature, st.cache_data(show_spinner=False, max_entries=64))
def metrics(signature: tuple, checkpoint_id: str) -> Metrics:
    """Every metric of a checkpoint's stored test predictions."""
    from fer_core.evaluation import compute_metrics

    return compute_metrics(predictions.at(signature, checkpoint_id))


def _study_signature(study_id: str) -> tuple:
    """The store and the study's trials by state, not file times: a running trial rewrites its file every few
    seconds with its batch."""
    from fer_core.studies.runs import read_trials, study_dir

    trials = tuple((t.trial, t.state, t.checkpoint) for t in read_trials(study_dir(study_id)).values())
    return store_signature(), trials


@refreshed_by(_study_signature, st.cache_data(show_spinner="Computing the study's intervals and tests…", max_entries=16))
def study_report(signature: tuple, study_id: str) -> StudyReport:
    """A study's report, recomputed when a checkpoint or a trial's status changes."""
    from fer_core.studies.report import study_report as report

    return report(study_id, store_root())
