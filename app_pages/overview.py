"""Overview: what the app does, the leaderboard of trained models, and what is in the dataset."""

from dataclasses import asdict

import altair as alt
import pandas as pd
import streamlit as st

from ui import charts, state

st.title("Facial expression recognition workbench")
st.markdown(
    "Compare CNNs trained on FER2013-style faces (48x48 grayscale; angry, disgust, fear, happy, sad, surprise, "
    "neutral): **Predict** runs every model on your photos or webcam, **Explain** shows where each model looks "
    "(Grad-CAM, Integrated Gradients, feature maps), **Evaluate** breaks results down by class, pair of models and "
    "training run. Train new models from the sidebar; they appear here when they finish."
)

broken = [c for c in state.checkpoints() if not c.ok]
for c in broken:
    st.warning(f"Checkpoint `{c.id}` cannot be used: {c.error}")

rows = state.leaderboard()
COLUMN_TITLES = {
    "test_accuracy": "test accuracy",
    "macro_f1": "macro F1",
    "disgust_recall": "disgust recall",
    "parameters_m": "parameters (M)",
    "mmacs": "MMACs",
    "cpu_latency_ms": "CPU latency (ms)",
    "training_time_min": "training time (min)",
}
st.subheader("Leaderboard (PrivateTest)")
LABEL_TITLES = {
    "fer2013": "FER2013 labels - accuracy on PrivateTest",
    "ferplus": "FER+ majority labels - accuracy on FER+ PrivateTest (not comparable with FER2013 figures)",
}
if not rows:
    st.info(
        "No trained checkpoints yet. Start one from the sidebar (**Train a model**), or from a terminal:\n\n"
        "`python -m fer_core train --model keras_cnn --data path/to/fer2013.zip`"
    )
else:
    st.caption(f"{len(rows)} checkpoints")
    df = pd.DataFrame([asdict(r) for r in rows]).rename(columns=COLUMN_TITLES).sort_values("test accuracy", ascending=False)
    order = [lab for lab in LABEL_TITLES if lab in set(df["labels"])] + sorted(set(df["labels"]) - set(LABEL_TITLES))
    for labels in order:
        group = df[df["labels"] == labels]
        st.markdown(f"**{LABEL_TITLES.get(labels, labels)}**")
        st.dataframe(
            group.drop(columns="labels"),
            hide_index=True,
            width="stretch",
            column_config={
                "test accuracy": st.column_config.NumberColumn(format="percent"),
                "macro F1": st.column_config.NumberColumn(format="%.3f"),
                "disgust recall": st.column_config.NumberColumn(format="percent"),
                "parameters (M)": st.column_config.NumberColumn(format="%.2f"),
                "MMACs": st.column_config.NumberColumn(format="%.0f"),
                "CPU latency (ms)": st.column_config.NumberColumn(format="%.1f"),
                "training time (min)": st.column_config.NumberColumn(format="%.1f"),
            },
        )
    plotted = df.dropna(subset=["CPU latency (ms)"])
    if len(plotted):
        scatter = (
            alt.Chart(plotted)
            .mark_circle(opacity=0.8)
            .encode(
                x=alt.X("CPU latency (ms):Q", scale=alt.Scale(type="log")),
                y=alt.Y("test accuracy:Q", axis=alt.Axis(format="%"), scale=alt.Scale(zero=False)),
                size=alt.Size("parameters (M):Q", scale=alt.Scale(range=[60, 900])),
                color="architecture:N",
                shape="labels:N",
                tooltip=[
                    "id",
                    "architecture",
                    alt.Tooltip("test accuracy:Q", format=".2%"),
                    "parameters (M)",
                    "CPU latency (ms)",
                ],
            )
            .properties(height=320, title="Accuracy against CPU latency (batch 1); size = parameters")
        )
        st.altair_chart(scatter, width="stretch")

st.subheader("Dataset")
path = state.default_dataset_path()
if not path:
    st.info(
        "FER2013 was not found. Put the Kaggle zip at `data/fer2013.zip`, or set `FER_DATA` to its path, "
        "to see its class counts, sample faces and known flaws here."
    )
else:
    overview = state.dataset_overview(path)
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
