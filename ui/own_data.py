"""Evaluate's "Your data" tab: add a labelled dataset of your own (a zip upload, or a folder, zip or csv on the
server), check how its labels map to the classes, run the models on it (results cached in the store), then
each model's figures, confusion matrix and per-class accuracy on it."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from fer_core.choices import DEFAULT_DETECTOR, DETECTOR_NAMES
from fer_core.data import FERPLUS_CLASSES, DataError
from fer_core.external import IGNORE, default_mapping, list_labelled

from . import charts, checkpoints, glossary
from . import own_data_results as results_of

if TYPE_CHECKING:
    from fer_core.external import ExternalResult, ExternalSummary

UPLOAD_KEY = "own_data_upload"  # (file id, temporary path) of the uploaded zip
UPLOAD_PREFIX = "fer-own-"


def render(ids: list[str], ranked: list[str]) -> None:
    first = not results_of.datasets()
    with st.expander("Add a labelled dataset of your own (CK+, JAFFE, your lab's faces…)", expanded=first):
        _add(ids)
    datasets = results_of.datasets()  # read after adding: a dataset just added shows in this same run
    if not datasets:
        st.info("No dataset of yours evaluated yet: add one above.")
        return
    names = results_of.names()
    fingerprint = st.selectbox(
        "Dataset",
        list(datasets),
        format_func=names.__getitem__,
        key="own_dataset",
        help="\n\n".join(f"{names[f]}: fingerprint {f} (of its faces and labels)" for f in datasets),
    )
    summary = datasets[fingerprint]
    _describe(summary)
    results = results_of.results(fingerprint)
    missing = [cid for cid in ids if cid not in results]
    if missing and st.button(f"Run the {len(missing)} models that have not seen it", key="own_run_missing"):
        _say_skipped(_run(lambda progress: results_of.run_models(fingerprint, missing, progress)))
        results = results_of.results(fingerprint)
    if not results:
        return
    table_ids = _standings(fingerprint, results, ranked)
    _model_details(fingerprint, results, table_ids)


def _standings(fingerprint: str, results: dict[str, ExternalResult], ranked: list[str]) -> list[str]:
    """The models (and the default ensemble) ranked on the dataset, each marked against the best; their ids."""
    order = [cid for cid in ranked if cid in results] + [cid for cid in results if cid not in ranked]
    marks = results_of.standings(fingerprint, order)
    rows = [
        {
            "best": "★" if marks[cid].best_within_noise else "",
            "model": checkpoints.name(cid),
            "accuracy": 100 * results[cid].predictions.accuracy,
            "95% CI": marks[cid].interval.points(),
            "vs best": marks[cid].verdict(),
            "macro F1": results_of.metrics(fingerprint, cid).macro_f1,
            "faces": len(results[cid].predictions.labels),
            "what it covers": results[cid].note(),
            "id": cid,
        }
        for cid in order
    ]
    if (ensemble := results_of.ensemble(fingerprint)) is not None:
        rows.append(
            {
                "model": f"ensemble (mean of {len(ensemble.members)})",
                "accuracy": 100 * ensemble.metrics.accuracy,
                "95% CI": ensemble.accuracy_interval().points(),
                "macro F1": ensemble.metrics.macro_f1,
                "faces": ensemble.metrics.n,
                "what it covers": "the leaderboard's default ensemble: " + ", ".join(map(checkpoints.name, ensemble.members)),
                "id": "ensemble",
            }
        )
    table = pd.DataFrame(rows).fillna({"best": "", "vs best": ""}).sort_values("accuracy", ascending=False)
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            **glossary.standing_columns(),
            "accuracy": st.column_config.NumberColumn(format="%.2f%%", help="on the classes the model shares with the data"),
            "macro F1": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    return [cid for cid in table["id"] if cid != "ensemble"]


def _model_details(fingerprint: str, results: dict[str, ExternalResult], table_ids: list[str]) -> None:
    """One model's confusion matrix and per-class accuracy on the dataset."""
    cid = st.selectbox("Model", table_ids, format_func=checkpoints.name, key="own_model", help=checkpoints.ids_help(table_ids))
    result, m = results[cid], results_of.metrics(fingerprint, cid)
    st.caption(
        f"{checkpoints.name(cid)} on {result.dataset}: accuracy {result.note()}. "
        "Probabilities are renormalised over the shared classes."
    )
    normalized = st.toggle("Row-normalised", True, key="own_norm")
    matrix = m.confusion_matrix_normalized if normalized else m.confusion_matrix
    st.altair_chart(charts.confusion_heatmap(matrix, list(result.predictions.classes), normalized), width="stretch")
    st.altair_chart(charts.per_class_bars({checkpoints.name(cid): m.per_class_accuracy}), width="stretch")


def _describe(summary: ExternalSummary) -> None:
    headline, *details = summary.describe(unreadable_shown=5)
    name, _, rest = headline.partition(": ")
    st.markdown(f"**{name}**: {rest}")
    st.caption("  \n".join(details))


def _add(ids: list[str]) -> None:
    st.caption(
        "Class folders (`happy/001.png`, any depth), a zip of them, or a csv of `path,label` rows. Folder names "
        "such as anger, sadness or 3_happiness are matched to the classes; edit the mapping below. Large images "
        "are cropped to their largest face. Each model is judged on the classes it shares with your data."
    )
    where = st.radio("From", ["upload a zip", "a path on this machine"], horizontal=True, key="own_from")
    source = _uploaded_zip() if where == "upload a zip" else _server_path()
    if source is None:
        return
    try:
        files = list_labelled(source)
    except (DataError, OSError) as exc:  # not a dataset, or a folder that cannot be read
        st.error(str(exc))
        return
    counts = pd.Series([f.label for f in files]).value_counts().sort_index()
    mapping = default_mapping(counts.index)
    edited = st.data_editor(
        pd.DataFrame({"label": counts.index, "images": counts.values, "class": [mapping[k] for k in counts.index]}),
        hide_index=True,
        disabled=["label", "images"],
        column_config={"class": st.column_config.SelectboxColumn(options=[*FERPLUS_CLASSES, IGNORE], required=True)},
        key=f"own_mapping-{source}",
    )
    chosen = dict(zip(edited["label"], edited["class"], strict=True))
    _say_which_models_lack(chosen, dict(zip(edited["label"], edited["images"], strict=True)), ids)
    detector = st.selectbox(
        "Face detector (for images larger than a face crop)", DETECTOR_NAMES, DETECTOR_NAMES.index(DEFAULT_DETECTOR)
    )
    if st.button(f"Find faces and run the {len(ids)} models", type="primary", key="own_go"):
        added = _run(lambda progress: results_of.add_and_run(source, chosen, detector, ids, progress))
        if added:
            fingerprint, skipped = added
            _say_skipped(skipped)
            st.session_state["own_dataset"] = fingerprint  # the dataset picker below opens on it


def _say_which_models_lack(mapping: dict[str, str], images: dict[str, int], ids: list[str]) -> None:
    """Before anything runs: the mapped classes that some models do not predict, whose faces those models skip."""
    metas = checkpoints.metas(trials=True)
    lines = []
    for target in sorted(set(mapping.values()) - {IGNORE}):
        lacking = [cid for cid in ids if target not in metas[cid].classes]
        if lacking:
            n = sum(images[label] for label, mapped in mapping.items() if mapped == target)
            shown = ", ".join(map(checkpoints.name, lacking[:4])) + (" …" if len(lacking) > 4 else "")
            lines.append(
                f"**{target}** is not a class of {len(lacking)} of the {len(ids)} models ({shown}): its {n} images are "
                "left out of their figures."
            )
    if lines:
        st.caption("  \n".join(lines))


def _uploaded_zip() -> Path | None:
    """The uploaded zip as a file (the dataset readers take paths), written once per upload into its own
    temporary folder; removed when the user removes or replaces the upload. Folders that ended sessions left
    behind go after a day."""
    # any file: the reader says why one is not a dataset (a type filter refuses it with an icon only)
    upload = st.file_uploader("Zip of class folders", key="own_zip", max_upload_size=500)
    held = st.session_state.get(UPLOAD_KEY)
    if held is not None and (upload is None or held[0] != upload.file_id):
        shutil.rmtree(Path(held[1]).parent, ignore_errors=True)
        held = st.session_state[UPLOAD_KEY] = None
    if upload is None:
        return None
    if held is None or not Path(held[1]).exists():
        _remove_stale_uploads()
        folder = Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX))  # the zip keeps its own name: the dataset's name
        file = folder / (Path(upload.name).name or "dataset.zip")
        file.write_bytes(upload.getvalue())
        held = st.session_state[UPLOAD_KEY] = (upload.file_id, str(file))
    return Path(held[1])


def _remove_stale_uploads(max_age_s: float = 86_400) -> None:
    for folder in Path(tempfile.gettempdir()).glob(f"{UPLOAD_PREFIX}*"):
        with contextlib.suppress(OSError):
            if time.time() - folder.stat().st_mtime > max_age_s:
                shutil.rmtree(folder, ignore_errors=True)


def _server_path() -> Path | None:
    text = st.text_input("Folder, zip or csv", placeholder="/data/ckplus", key="own_path").strip()
    if not text:
        return None
    return Path(text).expanduser()  # list_labelled says what is wrong with it


def _say_skipped(skipped: dict[str, str] | None) -> None:
    for cid, reason in (skipped or {}).items():
        st.warning(f"{checkpoints.name(cid)} left out: {reason}")


def _run(job):
    """Run `job(progress)` under a progress bar; its result, or None after an error said on the page. The page
    goes on drawing (no rerun: a rerun would reopen Evaluate on its first tab)."""
    bar = st.progress(0.0, "Starting…")
    try:
        result = job(lambda fraction, message: bar.progress(min(1.0, fraction), message))
    except (DataError, ValueError, OSError) as exc:
        st.error(f"Could not evaluate: {exc}")
        result = None
    bar.empty()
    return result
