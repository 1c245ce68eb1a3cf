"""Overview: what the app does, the leaderboard of trained models, and what is in the dataset."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import altair as alt
import pandas as pd
import streamlit as st

from fer_core.leaderboard import WEAK_POINTS, LeaderboardRow
from fer_core.models import list_models
from ui import charts, checkpoints, datasets, glossary, own_data_results

if TYPE_CHECKING:  # the Overview draws before scikit-learn (which fer_core.evaluation imports) is loaded
    from fer_core.evaluation import Standing

st.title("Facial expression recognition workbench")
st.markdown(
    "Compare CNNs trained on FER2013-style faces (48x48 grayscale; angry, disgust, fear, happy, sad, surprise, "
    "neutral): **Predict** runs every model on your photos or webcam, **Explain** shows where each model looks "
    "(Grad-CAM, Integrated Gradients, feature maps), **Evaluate** breaks results down by class, pair of models and "
    "training run, **Failures** shows which errors are the labels' (against the FER+ crowd), how models hold up under "
    "blur, noise, compression, occlusion and misalignment, and what they look at per class. Train new models from the "
    "sidebar; they appear here when they finish."
)

broken = [c for c in checkpoints.checkpoints() if not c.ok]
for c in broken:
    st.warning(f"Checkpoint `{c.id}` cannot be used: {c.error}")

COLUMNS = {  # LeaderboardRow field -> (title, help)
    "test_accuracy": ("test accuracy", "Share of the test faces (PrivateTest) whose most likely class is their label"),
    "macro_f1": ("macro F1", "F1 of each class, averaged with equal weight: rare classes count as much as happy"),
    "disgust_recall": ("disgust recall", "Share of disgust faces called disgust: the rarest class, where models fail first"),
    "parameters_m": ("parameters (M)", "Weights in millions (an ensemble: all its members')"),
    "mmacs": ("MMACs", "Millions of multiply-accumulates for one face: compute, whatever the machine"),
    "cpu_latency_ms": ("CPU latency (ms)", "Median time for one face at batch 1 on the CPU it was measured on"),
    "training_time_min": ("training time (min)", "Wall-clock training time on its device"),
    "epochs": ("epochs", "Epochs run; the weights of the best one (on PublicTest) are kept. The ensemble: its members' together"),
    "device": ("device", "Where it was trained"),
    "date": ("date", "When training finished"),
    "id": ("id", "The checkpoint's folder in checkpoints/: what the CLI and exports name"),
}
PERCENT = ("test accuracy", "disgust recall")
LABEL_TITLES = {
    "fer2013": "FER2013 labels - accuracy on PrivateTest",
    "ferplus": "FER+ majority labels - accuracy on FER+ PrivateTest (not comparable with FER2013 figures)",
}


def leaderboard_frame(rows: list[LeaderboardRow], own: dict[str, dict[str, float]], marks: dict[str, Standing]) -> pd.DataFrame:
    """One label set's rows, best first: short names, percentages in points, each accuracy's interval, and the
    best mark on every checkpoint the test cannot tell from the most accurate (none until `marks` are known)."""
    frame = pd.DataFrame([asdict(r) for r in rows])
    frame.insert(0, "model", [f"ensemble ({r.architecture})" if r.members else checkpoints.name(r.id) for r in rows])
    frame = frame.rename(columns={k: title for k, (title, _) in COLUMNS.items()})
    frame[list(PERCENT)] = frame[list(PERCENT)] * 100
    frame["95% CI"] = [interval_text(r, marks) for r in rows]
    frame["vs best"] = [marks[r.id].verdict() if r.id in marks else "" for r in rows]
    frame.insert(0, "best", ["★" if r.id in marks and marks[r.id].best_within_noise else "" for r in rows])
    for title, accuracy in own.items():
        frame[title] = [100 * accuracy[cid] if cid in accuracy else None for cid in frame["id"]]
    return frame.sort_values("test accuracy", ascending=False)


def interval_text(row: LeaderboardRow, marks: dict[str, Standing]) -> str:
    """The accuracy's bootstrap 95% interval in points: an ensemble's from its line, a checkpoint's from `marks`."""
    ci = row.accuracy_ci or (marks[row.id].interval if row.id in marks else None)
    return ci.points() if ci else ""


def own_data_columns() -> dict[str, dict[str, float]]:
    """Column title -> each checkpoint's accuracy on that dataset of the user's (Evaluate > Your data)."""
    return {
        title: {cid: r.predictions.accuracy for cid, r in own_data_results.results(fp).items()}
        for fp, title in own_data_results.names().items()
    }


def own_data_ensembles() -> dict[str, float]:
    """Column title -> the default ensemble's accuracy on that dataset, where every member has run on it."""
    found = {title: own_data_results.ensemble(fp) for fp, title in own_data_results.names().items()}
    return {title: e.predictions.accuracy for title, e in found.items() if e is not None}


def show_leaderboard(frame: pd.DataFrame, own_titles: list[str]) -> None:
    percent = {t: st.column_config.NumberColumn(t, format="%.2f%%", help=COLUMNS_HELP[t]) for t in PERCENT}
    number = {
        "macro F1": "%.3f",
        "parameters (M)": "%.2f",
        "MMACs": "%.0f",
        "CPU latency (ms)": "%.1f",
        "training time (min)": "%.0f",
        "epochs": "%d",
    }
    own = {
        title: st.column_config.NumberColumn(
            title, format="%.2f%%", help="Accuracy on your dataset, on the classes each model shares with it (Evaluate)"
        )
        for title in own_titles
    }
    st.dataframe(
        frame[
            [
                "best",
                "model",
                "test accuracy",
                "95% CI",
                "vs best",
                *own,
                *(title for title, _ in COLUMNS.values() if title != "test accuracy"),
            ]
        ],
        hide_index=True,
        width="stretch",
        column_config={
            **glossary.standing_columns(
                "Bootstrap 95% interval of the test accuracy, in points (2,000 resamples of the test faces)"
            ),
            "model": st.column_config.TextColumn("model", help="Architecture · labels (· a tag where two share them)"),
            **percent,
            **{t: st.column_config.NumberColumn(t, format=f, help=COLUMNS_HELP[t]) for t, f in number.items()},
            **{t: st.column_config.TextColumn(t, help=COLUMNS_HELP[t]) for t in ("device", "date", "id")},
            **own,
        },
    )


COLUMNS_HELP = {title: text for title, text in COLUMNS.values()}

rows = checkpoints.leaderboard()
st.subheader("Leaderboard (PrivateTest)")
if not rows:
    st.info(
        "No trained checkpoints yet. Start one from the sidebar (**Train a model**), or from a terminal:\n\n"
        "`python -m fer_core train --model keras_cnn --data path/to/fer2013.zip`"
    )
else:
    own = own_data_columns()  # read once: every table and its redraw use it
    groups: dict[str, list[LeaderboardRow]] = {}
    for row in rows:
        groups.setdefault(row.labels, []).append(row)
    order = [lab for lab in LABEL_TITLES if lab in groups] + sorted(set(groups) - set(LABEL_TITLES))
    st.caption(
        f"{len(rows)} checkpoints. ★ marks the most accurate of each label set and every checkpoint whose gap to it is "
        "within noise (McNemar on the same faces, Holm-corrected over the table); 95% CI: the accuracy's bootstrap "
        "interval. The ensemble line averages the default members' probabilities (Evaluate > Ensemble to choose "
        "others); its cost is the sum of theirs."
    )
    tables = {}
    for labels in order:
        frame = leaderboard_frame(groups[labels], own, {})
        st.markdown(f"**{LABEL_TITLES.get(labels, labels)}**")
        tables[labels] = st.empty()
        with tables[labels]:
            show_leaderboard(frame, list(own))
        singles = frame[(frame["members"].map(len) == 0) & frame["CPU latency (ms)"].notna()]
        weak = singles["test accuracy"] < singles["test accuracy"].max() - WEAK_POINTS
        if len(singles[~weak]) > 1:
            st.altair_chart(charts.accuracy_latency(singles[~weak], [m.name for m in list_models()]), width="stretch")
            off = "".join(
                f"; {row.model} ({row.acc:.1f}%) is off the chart"
                for row in singles[weak].rename(columns={"test accuracy": "acc"}).itertuples()
            )
            st.caption(
                f"Accuracy against CPU latency at batch 1 (log scale); point size: parameters. Checkpoints more than "
                f"{WEAK_POINTS:.0f} points below the best are left out{off}."
            )
    # Redrawn once the page is up: the intervals, the tests and the ensembles read every stored prediction and
    # import scikit-learn (seconds on a small CPU the first time; cached after).
    ensemble = checkpoints.ensemble_line()
    for title, accuracy in own_data_ensembles().items():
        own[title]["ensemble"] = accuracy
    for labels in order:
        marks = checkpoints.standings([r.id for r in groups[labels]])
        extra = [ensemble] if ensemble is not None and ensemble.labels == labels else []
        with tables[labels]:
            show_leaderboard(leaderboard_frame([*groups[labels], *extra], own, marks), list(own))
    with st.expander("Model cards: what each model is, its hardware and budget, what limited it"):
        for row in sorted(rows, key=lambda r: -r.test_accuracy):
            st.markdown(f"**{checkpoints.name(row.id)}** (`{row.id}`): {row.card or 'no card'}")

    hidden = checkpoints.hidden()
    with st.expander("Hide or delete checkpoints", key="overview_manage"):  # keyed: stays open as the tables above change
        usable = [c.id for c in checkpoints.checkpoints() if c.ok]
        st.caption(
            f"{len(hidden)} hidden. Hidden checkpoints leave the leaderboard, the model pickers and the ensembles; "
            "show them again here. Checkpoints you trained can be deleted; the ones shipped with the workbench can "
            "only be hidden."
        )
        cid = st.selectbox(
            "Checkpoint", usable, format_func=lambda c: checkpoints.name(c) + (" (hidden)" if c in hidden else ""), key="manage"
        )
        if cid is not None:
            hide_col, delete_col = st.columns(2)
            if cid in hidden:
                hide_col.button("Show again", on_click=checkpoints.set_hidden, args=([cid], False), icon=":material/visibility:")
            else:
                hide_col.button("Hide", on_click=checkpoints.set_hidden, args=([cid], True), icon=":material/visibility_off:")
            if cid in checkpoints.shipped():
                delete_col.caption("Ships with the workbench: it can be hidden, never deleted.")
            else:
                sure = delete_col.checkbox(f"Delete `{cid}` and its files for good", key=f"sure-{cid}")
                delete_col.button(
                    "Delete", disabled=not sure, on_click=checkpoints.delete, args=([cid],), icon=":material/delete:"
                )
        if problem := st.session_state.pop("delete_error", None):
            st.error(f"Not deleted: {problem}")

st.subheader("Dataset")
path = datasets.default_dataset_path()
if not path:
    st.info(
        "FER2013 was not found. Put the Kaggle zip at `data/fer2013.zip`, or set `FER_DATA` to its path, "
        "to see its class counts, sample faces and known flaws here."
    )
else:
    overview = datasets.dataset_overview(path)
    summary = overview.summary
    st.caption(f"`{path}` · {summary.split_method} · fingerprint `{summary.fingerprint}`")
    counts = pd.DataFrame([{"split": s, "class": c, "faces": n} for s, d in summary.counts.items() for c, n in d.items()])
    st.altair_chart(
        alt.Chart(counts)
        .mark_bar()
        .encode(
            x=alt.X("class:N", sort=None, title=None),
            xOffset="split:N",
            y="faces:Q",
            color="split:N",
            tooltip=["split", "class", "faces"],
        )
        .properties(height=240),
        width="stretch",
    )
    st.markdown("**Known flaws of this data** (measured here and reported, never fixed):")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Duplicate groups", summary.duplicate_groups, help=f"{summary.duplicate_extra_copies} extra copies")
    c2.metric("Train/test leakage groups", summary.groups_across_train_and_eval)
    c3.metric("Conflicting labels", summary.groups_with_conflicting_labels)
    c4.metric("Blank images", summary.blank_images)
    for cls, faces in overview.samples.items():
        st.image([charts.upscale(f, 72) for f in faces], caption=[cls] + [""] * (len(faces) - 1), width=72)
