"""The user's own datasets as Evaluate's Your data tab reads them: what was evaluated in this store, each
model's cached result, metrics and standing on it, and the default ensemble's figure; and running models on one
(fer_core.external), the results cached on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from fer_core.leaderboard import default_ensemble

from .cache import own_data_signature, refreshed_by, store_root
from .checkpoints import classifier, metas, name

if TYPE_CHECKING:
    from fer_core.evaluation import EnsembleResult, Metrics, Standing
    from fer_core.external import ExternalData, ExternalResult, ExternalSummary

Progress = Callable[[float, str], None]  # (fraction done, what is running)


@refreshed_by(own_data_signature, st.cache_data(show_spinner=False))
def datasets(signature: tuple) -> dict[str, ExternalSummary]:
    """fingerprint -> summary of each dataset of the user's evaluated in this store."""
    from fer_core.external import cached_datasets

    return cached_datasets(store_root())


def names() -> dict[str, str]:
    """fingerprint -> the name a dataset of the user's goes by in tables and pickers (naming.dataset_names)."""
    from fer_core.naming import dataset_names

    return dataset_names(datasets())


@refreshed_by(own_data_signature, st.cache_data(show_spinner=False))
def _all_results(signature: tuple, fingerprint: str) -> dict[str, ExternalResult]:
    from fer_core.external import cached_results

    return cached_results(fingerprint, store_root())


def results(fingerprint: str) -> dict[str, ExternalResult]:
    """checkpoint id -> its cached result on that dataset (hidden checkpoints left out)."""
    shown = metas()
    return {cid: r for cid, r in _all_results(fingerprint).items() if cid in shown}


@refreshed_by(own_data_signature, st.cache_data(show_spinner=False, max_entries=64))
def metrics(signature: tuple, fingerprint: str, checkpoint_id: str) -> Metrics:
    """Every metric of a checkpoint on a dataset of the user's, over the classes they share."""
    from fer_core.evaluation import compute_metrics

    return compute_metrics(_all_results.at(signature, fingerprint)[checkpoint_id].predictions)


@refreshed_by(own_data_signature, st.cache_data(show_spinner=False, max_entries=16))
def standings(signature: tuple, fingerprint: str, checkpoint_ids: list[str]) -> dict[str, Standing]:
    """fer_core.evaluation.standings on a dataset of the user's, among the checkpoints given (each with a result)."""
    from fer_core.evaluation import standings as of

    found = _all_results.at(signature, fingerprint)
    return of({cid: found[cid].predictions for cid in checkpoint_ids})


@refreshed_by(own_data_signature, st.cache_data(show_spinner=False, max_entries=16))
def _ensemble(signature: tuple, fingerprint: str, members: tuple[str, ...]) -> EnsembleResult | None:
    from fer_core.evaluation import EnsembleError, evaluate_ensemble

    found = _all_results.at(signature, fingerprint)
    if not all(cid in found for cid in members):
        return None
    try:
        return evaluate_ensemble({cid: found[cid].predictions for cid in members})
    except EnsembleError:  # fewer than two, or members that saw other faces of it (other class lists)
        return None


def ensemble(fingerprint: str) -> EnsembleResult | None:
    """The leaderboard's default ensemble on a dataset of the user's; None until every member has run on it."""
    return _ensemble(fingerprint, tuple(default_ensemble(metas().values())))


def add_and_run(
    source: Path, mapping: dict[str, str] | None, detector: str, checkpoint_ids: list[str], on_progress: Progress
) -> tuple[str, dict[str, str]]:
    """Crop the dataset's faces (or read them from the cache), then run the models on them (run_models); the first
    half of the progress is finding faces. Returns its fingerprint and the models skipped, with the reason."""
    from fer_core.external import external_root, load_external

    data = load_external(
        source,
        mapping,
        detector,
        cache=external_root(store_root()),
        on_progress=lambda done, total: on_progress(0.5 * done / total, f"Finding faces: {done} of {total} images"),
    )
    return data.fingerprint, run_models(data.fingerprint, checkpoint_ids, on_progress, data)


def run_models(
    fingerprint: str, checkpoint_ids: list[str], on_progress: Progress, data: ExternalData | None = None
) -> dict[str, str]:
    """Run the models that have not seen the dataset yet on its cached faces (the second half of the progress);
    returns the models that cannot be judged on it (fewer than two shared classes), with the reason."""
    from fer_core.external import cached_data, evaluate_checkpoints

    def started(done: int, cid: str) -> None:
        on_progress(0.5 + 0.5 * done / len(checkpoint_ids), f"Running {name(cid)} ({done + 1} of {len(checkpoint_ids)})")

    data = data or cached_data(fingerprint, store_root())
    return evaluate_checkpoints(data, checkpoint_ids, classifier, store_root(), started).skipped
