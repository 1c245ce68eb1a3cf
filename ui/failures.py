"""What the Failures page reads, cached per checkpoint and store signature, and its background jobs (one of each
kind per server process: a second tab sees the running one)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import streamlit as st

from ui import checkpoints, datasets, own_data_results
from ui.cache import checkpoint_signature, refreshed_by, store_root, store_signature

if TYPE_CHECKING:
    from fer_core.failures.background import BackgroundJob
    from fer_core.failures.label_noise import CrowdVotes, FlagAgreement, LabelIssues, LabelNoise
    from fer_core.failures.robustness import RobustnessRun
    from fer_core.failures.saliency import ClassSaliency
    from fer_core.leaderboard import MovingDefaults
    from fer_core.records import Predictions


@st.cache_data(show_spinner="Reading the FER+ votes…", max_entries=4)
def crowd(data_path: str, names: tuple[str, ...]) -> CrowdVotes:
    """The FER+ votes of these faces (a DataError saying where to put them when they are missing)."""
    from fer_core.failures.label_noise import find_crowd_votes

    return find_crowd_votes(data_path or None, names)


@refreshed_by(lambda *_: (store_signature(), datasets.default_dataset_path()), st.cache_data(show_spinner=False, max_entries=64))
def label_noise(signature: tuple, subject: str, members: tuple[str, ...]) -> LabelNoise:
    """A checkpoint's (or an ensemble's, named `subject`) test faces in the label-noise buckets."""
    from fer_core.failures.label_noise import label_noise as buckets

    predictions = subject_predictions(members)
    return buckets(subject, predictions, crowd(signature[1], predictions.names))


def subject_predictions(members: tuple[str, ...]) -> Predictions:
    """One checkpoint's stored test predictions, or the mean-probability ensemble of several."""
    from fer_core.evaluation import evaluate_ensemble

    if len(members) == 1:
        return checkpoints.predictions(members[0])
    return evaluate_ensemble({cid: checkpoints.predictions(cid) for cid in members}).predictions


@refreshed_by(store_signature, st.cache_data(show_spinner="cleanlab: finding likely label issues…", max_entries=64))
def issues(signature: tuple, subject: str, members: tuple[str, ...]) -> LabelIssues:
    from fer_core.failures.label_noise import label_issues

    return label_issues(subject, subject_predictions(members))


def flag_agreement(subject: str, members: tuple[str, ...]) -> FlagAgreement:
    """How cleanlab's flags on these test faces match the FER+ crowd."""
    from fer_core.failures.label_noise import flag_agreement as agreement

    return agreement(issues(subject, members), label_noise(subject, members).crowd, subject_predictions(members))


@refreshed_by(store_signature, st.cache_data(show_spinner="cleanlab: finding likely label issues…", max_entries=32))
def external_issues(signature: tuple, fingerprint: str, checkpoint_id: str) -> LabelIssues:
    """cleanlab's flags on a dataset of the user's, from a model's cached predictions on it."""
    from fer_core.failures.label_noise import label_issues

    return label_issues(checkpoint_id, own_data_results.results(fingerprint)[checkpoint_id].predictions)


def _results_signature(kind: str, checkpoint_id: str) -> tuple:
    """The checkpoint's meta.json and the folder of results of this kind as they are now: every result is written
    by a rename into that folder, so a new one is read at once (without hashing the weights on every rerun)."""
    return checkpoint_signature(checkpoint_id), _results_mtime(kind)


def _results_mtime(kind: str) -> int:
    from fer_core.failures.cache import results_folder

    folder = results_folder(kind)
    return folder.stat().st_mtime_ns if folder.is_dir() else 0


def cached_robustness(checkpoint_ids: list[str], keys: tuple[str, ...]) -> dict[str, RobustnessRun]:
    """The checkpoints whose runs hold every condition in `keys`, read from the failures cache."""
    found = {cid: _cached_robustness(cid, keys) for cid in checkpoint_ids}
    return {cid: run for cid, run in found.items() if run is not None}


@refreshed_by(lambda cid, *_: _results_signature("robustness", cid), st.cache_data(show_spinner=False, max_entries=256))
def _cached_robustness(signature: tuple, checkpoint_id: str, keys: tuple[str, ...]) -> RobustnessRun | None:
    from fer_core.failures.robustness import cached_run

    return cached_run(store_root() / checkpoint_id, checkpoints.metas()[checkpoint_id], list(keys))


@refreshed_by(
    lambda: (checkpoints.shown_signature(), _results_mtime("robustness")), st.cache_data(show_spinner=False, max_entries=4)
)
def moving_defaults(signature: tuple) -> MovingDefaults:
    """Live's and Video's default models, from the cached robustness runs (read again when a run is added)."""
    from fer_core.failures.robustness import measured_mce
    from fer_core.leaderboard import moving_defaults as choose

    store = [(meta, store_root() / cid) for cid, meta in checkpoints.metas().items()]
    return choose([meta for meta, _ in store], measured_mce(store))


def cached_saliency(checkpoint_ids: list[str]) -> dict[str, ClassSaliency]:
    found = {cid: _cached_saliency(cid) for cid in checkpoint_ids}
    return {cid: maps for cid, maps in found.items() if maps is not None}


@refreshed_by(lambda cid: _results_signature("saliency", cid), st.cache_data(show_spinner=False, max_entries=64))
def _cached_saliency(signature: tuple, checkpoint_id: str) -> ClassSaliency | None:
    from fer_core.failures.saliency import cached_class_saliency

    return cached_class_saliency(store_root() / checkpoint_id, checkpoints.metas()[checkpoint_id])


@st.cache_resource
def _jobs() -> dict[str, BackgroundJob]:
    return {}


def job(kind: str) -> BackgroundJob | None:
    """The process's job of that kind ("robustness" or "saliency"), running or finished, if any."""
    return _jobs().get(kind)


def start_robustness(checkpoint_ids: list[str], keys: tuple[str, ...]) -> None:
    from fer_core.failures.background import robustness_job

    names = {cid: checkpoints.name(cid) for cid in checkpoint_ids}
    _jobs()["robustness"] = robustness_job(names, datasets.default_dataset_path(), keys, store_root()).start()


def start_saliency(checkpoint_ids: list[str]) -> None:
    from fer_core.failures.background import saliency_job

    names = {cid: checkpoints.name(cid) for cid in checkpoint_ids}
    _jobs()["saliency"] = saliency_job(names, datasets.default_dataset_path(), store_root()).start()


@refreshed_by(checkpoint_signature, st.cache_resource(show_spinner=False, max_entries=16))
def test_faces(signature: tuple, checkpoint_id: str) -> np.ndarray | None:
    """A checkpoint's test faces (uint8 N x 48 x 48) in the order of its stored predictions; None without the data."""
    meta = checkpoints.metas()[checkpoint_id]
    data = datasets.found_dataset(meta)
    if data is None:
        return None
    return data.take(meta.test_split)[0][:, 0].numpy()


@refreshed_by(checkpoint_signature, st.cache_resource(show_spinner=False, max_entries=4))
def corrupted(signature: tuple, checkpoint_id: str, corruption: str, severity: int) -> np.ndarray | None:
    """The checkpoint's whole test set as the suite degraded it: the very pixels the model was scored on (the random
    parts are drawn face by face over the whole set, so degrading a few faces alone would draw others)."""
    from fer_core.failures.corruptions import corrupt

    faces = test_faces.at(signature, checkpoint_id)
    return None if faces is None else corrupt(faces, corruption, severity)


@st.cache_data(show_spinner=False, max_entries=4)
def external_faces(fingerprint: str) -> dict[str, np.ndarray]:
    """A dataset of the user's cropped faces, by name."""
    from fer_core.external import cached_data

    data = cached_data(fingerprint, store_root())
    return dict(zip(data.names, data.images, strict=True))


def saliency_rows(found: ClassSaliency) -> list[tuple[str, list[np.ndarray], list[str]]]:
    """Three rows of one image per class, each over the class's mean face: the mean Grad-CAM over faces the model
    got right, over faces it got wrong (each scaled to its own peak), and the region costs (scaled to the model's
    largest, so classes compare)."""
    from fer_core.explain import overlay_heatmap
    from fer_core.failures.saliency import region_heat

    faces = [np.clip(face, 0, 255).astype(np.uint8) for face in found.mean_faces]
    rows = []
    for title, maps, counts in (
        ("Grad-CAM, faces it got right", found.correct_maps, found.correct_faces),
        ("Grad-CAM, faces it got wrong", found.wrong_maps, found.wrong_faces),
    ):
        images = [
            overlay_heatmap(face, np.nan_to_num(m) / max(float(np.nanmax(m)), 1e-6)) if n else np.zeros((48, 48, 3), np.uint8)
            for face, m, n in zip(faces, maps, counts, strict=True)
        ]
        rows.append((title, images, [f"{c} ({n})" for c, n in zip(found.classes, counts, strict=True)]))
    heat = region_heat(found.region_drop)
    rows.append(
        (
            "Cost of greying each cell (probability of the true class lost)",
            [overlay_heatmap(face, h) for face, h in zip(faces, heat, strict=True)],
            [f"{c} (up to {d.max():.0%})" for c, d in zip(found.classes, found.region_drop, strict=True)],
        )
    )
    return [
        (title, [cv2.resize(i, (100, 100), interpolation=cv2.INTER_LINEAR) for i in images], caps) for title, images, caps in rows
    ]
