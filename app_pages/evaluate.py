"""Evaluate: every view reads the predictions stored with each checkpoint; only the embedding runs a model."""

from dataclasses import asdict

import pandas as pd
import streamlit as st

from fer_core.evaluation import EnsembleError, evaluate_ensemble, mcnemar
from fer_core.leaderboard import WEAK_POINTS, default_ensemble, ranked_checkpoints
from fer_core.naming import LABEL_NAMES
from ui import charts, checkpoints, datasets, explanations, glossary, own_data, page
from ui.curves import OVERLAID_RUNS, learning_curves

st.title("Evaluate")
EMBEDDED = "evaluate_embedded"  # session key: the (model, faces) whose t-SNE was asked for, drawn until they change

page.require_checkpoints()
linked = st.query_params.get("model")  # a link from another page (a study's trial) opens on that model
meta_of = checkpoints.metas()
if linked and linked not in meta_of and linked in (with_trials := checkpoints.metas(trials=True)):
    meta_of[linked] = with_trials[linked]  # a study trial asked for by name shows although trials are hidden
ids = list(meta_of)
ranked = ranked_checkpoints(meta_of.values())  # the best first: what the views open on


def model_panel(cid: str, key: str, per_row: int = 4) -> None:
    """`per_row`: headline figures side by side (2 in half-width columns, where 4 would cut the numbers)."""
    m, classes = checkpoints.metrics(cid), meta_of[cid].classes
    figures = [
        ("accuracy", f"{m.accuracy:.2%}"),
        ("macro F1", f"{m.macro_f1:.3f}"),
        ("top-2", f"{m.top2_accuracy:.2%}"),
        ("ECE", f"{m.ece:.3f}"),
    ]
    for start in range(0, len(figures), per_row):
        for column, (label, value) in zip(st.columns(per_row), figures[start : start + per_row], strict=True):
            column.metric(label, value)
    normalized = st.toggle("Row-normalised", True, key=f"norm-{key}")
    st.altair_chart(
        charts.confusion_heatmap(m.confusion_matrix_normalized if normalized else m.confusion_matrix, classes, normalized),
        width="stretch",
    )
    st.altair_chart(charts.per_class_bars({checkpoints.name(cid): m.per_class_accuracy}), width="stretch")


def downloads(cid: str) -> None:
    """The checkpoint as a zip, and its ONNX export (made, and checked, when asked for)."""
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download checkpoint (.zip)",
        data=lambda: checkpoints.checkpoint_package(cid),
        file_name=f"{cid}.zip",
        mime="application/zip",
        on_click="ignore",
        icon=":material/download:",
        help="weights (safetensors), meta.json, stored test predictions and the model card",
    )
    ready = st.session_state.get("onnx_export")
    if ready is None or ready[0] != cid:
        if not c2.button("Export to ONNX", key=f"onnx-{cid}", help="ONNX + sidecar, checked against PyTorch on test faces"):
            return
        try:
            ready = st.session_state["onnx_export"] = (cid, checkpoints.onnx_package(cid))
        except (ValueError, OSError) as exc:  # ExportError, DataError: say why, keep serving
            c2.error(f"Cannot export {cid}: {exc}")
            return
    c2.download_button(
        "Download ONNX + sidecar (.zip)",
        data=ready[1],
        file_name=f"{cid}-onnx.zip",
        mime="application/zip",
        on_click="ignore",
        icon=":material/download:",
    )


tab_one, tab_two, tab_all, tab_ens, tab_emb, tab_runs, tab_own = st.tabs(
    ["One model", "Two models", "All models", "Ensemble", "Embedding", "Runs", "Your data"]
)

with tab_one:
    cid = st.selectbox(
        "Model",
        ids,
        index=ids.index(linked if linked in ids else ranked[0]),
        key="one",
        format_func=checkpoints.name,
        help=checkpoints.ids_help(ids),
    )
    meta = meta_of[cid]
    st.caption(f"Checkpoint `{cid}`")
    m = checkpoints.metrics(cid)
    if meta.card:
        st.info(meta.card)
    model_panel(cid, "one")
    downloads(cid)
    st.markdown("**Classification report**")
    # scikit-learn's accuracy entry is a bare number: a row of it would repeat it as precision, recall and F1 with
    # "support 1"; accuracy is the first figure above
    report = pd.DataFrame({k: v for k, v in m.classification_report.items() if k != "accuracy"}).T
    st.dataframe(report.style.format("{:.3f}").format("{:.0f}", subset=["support"]), width="stretch")
    left, right = st.columns(2)
    left.markdown("**ROC (one-vs-rest)**")
    left.altair_chart(charts.roc_chart(m.roc), width="stretch")
    left.caption(f"micro-average AUC {m.micro_auc:.3f}")
    right.markdown("**Calibration** (bars on the diagonal = calibrated)")
    right.altair_chart(charts.reliability_chart(m.reliability), width="stretch")
    learning_curves({checkpoints.name(cid): meta.history}, key="one_model_curves")

    st.markdown("**Misclassified test faces**")
    c1, c2, c3 = st.columns(3)
    true_cls = c1.selectbox("True class", ["any", *meta.classes])
    pred_cls = c2.selectbox("Predicted class", ["any", *meta.classes])
    limit = c3.number_input("Show at most", 8, 200, 40, step=8)
    found = explanations.mistakes(
        cid, None if true_cls == "any" else true_cls, None if pred_cls == "any" else pred_cls, int(limit)
    )
    if found is None:
        st.info("The dataset this model was tested on was not found (set FER_DATA) so faces cannot be shown.")
    else:
        total, shown = found
        st.caption(
            f"{total} misclassified faces match; showing {len(shown)}, the most confident mistakes first "
            "(often a label that looks wrong: FER2013's labels are noisy, see Overview)."
        )
        if shown:
            st.image(
                [charts.upscale(x.face, 96) for x in shown],
                caption=[f"{i}: {x.true_class}→{x.predicted_class} {x.confidence:.0%}" for i, x in enumerate(shown, 1)],
                width=96,
            )
            pick_col, link_col = st.columns([2, 1], vertical_alignment="bottom")
            pick = pick_col.selectbox(
                "Face to explain", range(len(shown)), format_func=lambda i: f"{i + 1}: {shown[i].name}", key="explain_pick"
            )
            link_col.page_link(
                "app_pages/explain.py",
                label="Explain this face",
                icon=":material/visibility:",
                query_params={"face": shown[pick].name, "model": cid},
            )

with tab_two:
    if len(ids) < 2:
        st.info("Train a second model to compare two.")
    else:
        c1, c2 = st.columns(2)
        runner_up = ranked[1] if len(ranked) > 1 else next(i for i in ids if i != ranked[0])
        a = c1.selectbox(
            "Model A", ids, index=ids.index(ranked[0]), key="a", format_func=checkpoints.name, help=checkpoints.ids_help(ids)
        )
        b = c2.selectbox(
            "Model B", ids, index=ids.index(runner_up), key="b", format_func=checkpoints.name, help=checkpoints.ids_help(ids)
        )
        with c1:
            model_panel(a, "a", per_row=2)
        with c2:
            model_panel(b, "b", per_row=2)
        pa, pb = checkpoints.predictions(a), checkpoints.predictions(b)
        if a == b:
            st.info("Model A and B are the same checkpoint: pick another for B to test the difference.")
        elif pa.names != pb.names:
            st.warning("These models were tested on different faces: McNemar's test needs the same test set.")
        else:
            r = mcnemar(pa.predicted, pb.predicted, pa.labels)
            verdict = "a significant" if r.significant else "no significant"
            st.markdown(
                f"**McNemar's test** ({r.statistic}): A alone right on {r.only_a_correct} faces, B alone on "
                f"{r.only_b_correct}; p = {r.p_value:.4g}: {verdict} difference at the 5% level."
            )

with tab_all:
    by_labels: dict[str, list[str]] = {}
    for cid in ids:
        by_labels.setdefault(meta_of[cid].data.label_source, []).append(cid)
    if len(by_labels) > 1:
        st.caption(
            "One table per label set: their test faces carry other labels (FER2013's or the FER+ crowd's majority), "
            "so their accuracies are not comparable and are never ranked together."
        )
    decimals = {"loss": "loss", "macro_f1": "macro F1", "weighted_f1": "weighted F1", "ece": "ECE", "micro_auc": "micro AUC"}
    for labels, group in by_labels.items():
        marks = checkpoints.standings(group)
        rows = []
        for cid in group:
            figures = {k: v for k, v in asdict(checkpoints.metrics(cid).headline()).items() if k != "per_class_accuracy"}
            rows.append(
                {
                    "best": "★" if marks[cid].best_within_noise else "",
                    "model": checkpoints.name(cid),
                    "n": figures.pop("n"),
                    "accuracy": figures.pop("accuracy"),
                    "95% CI": marks[cid].interval.points(),  # beside the accuracy: on a laptop the table scrolls
                    "vs best": marks[cid].verdict(),
                    **figures,
                    "id": cid,
                }
            )
        table = pd.DataFrame(rows).sort_values("accuracy", ascending=False)
        st.markdown(f"**{LABEL_NAMES.get(labels, labels)} labels** ({len(group)} model{'s' * (len(group) != 1)})")
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            column_config={
                **glossary.standing_columns(),
                "id": st.column_config.TextColumn("checkpoint id"),
                "n": st.column_config.NumberColumn("test faces", format="%d"),
                **glossary.percent_columns("accuracy"),
                "top2_accuracy": st.column_config.NumberColumn("top-2 accuracy", format="percent"),
                **{name: st.column_config.NumberColumn(label, format="%.3f") for name, label in decimals.items()},
            },
        )
        heatmap = {checkpoints.name(cid): checkpoints.metrics(cid).per_class_accuracy for cid in table["id"]}  # the table's order
        st.altair_chart(charts.per_class_heatmap(heatmap), width="stretch")

with tab_ens:
    members = st.multiselect(
        "Members (mean of probabilities)",
        ids,
        default=default_ensemble(meta_of.values()),
        format_func=checkpoints.name,
        help=checkpoints.ids_help(
            ids, f"By default the most common class list's models within {WEAK_POINTS:.0f} points of its best"
        ),
    )
    if len(members) < 2:
        st.info("Pick at least two models.")
    else:
        try:
            ens = evaluate_ensemble({cid: checkpoints.predictions(cid) for cid in members})
        except EnsembleError as exc:
            st.warning(f"{exc}.")
        else:
            c1, c2, c3 = st.columns(3)
            c1.metric(
                "ensemble accuracy",
                f"{ens.metrics.accuracy:.2%}",
                f"{ens.metrics.accuracy - ens.best_member_accuracy:+.2%} vs best member",
            )
            c2.metric("macro F1", f"{ens.metrics.macro_f1:.3f}")
            c3.metric("ECE", f"{ens.metrics.ece:.3f}")
            st.altair_chart(
                charts.confusion_heatmap(ens.metrics.confusion_matrix_normalized, ens.predictions.classes, True), width="stretch"
            )

with tab_emb:
    cid = st.selectbox(
        "Model", ids, index=ids.index(ranked[0]), key="emb", format_func=checkpoints.name, help=checkpoints.ids_help(ids)
    )
    n = st.slider("Test faces", 200, 2000, 600, step=100)
    if datasets.found_dataset(meta_of[cid]) is None:
        st.info("The test faces are needed for this view: FER2013 was not found (set FER_DATA).")
    else:
        if st.button("Compute t-SNE of penultimate-layer features"):
            st.session_state[EMBEDDED] = (cid, n)  # later reruns draw it again, from the cache
        if st.session_state.get(EMBEDDED) == (cid, n):
            emb = explanations.embedding(cid, n)
            st.altair_chart(charts.embedding_scatter(emb.xy, emb.labels, emb.predicted, emb.faces), width="stretch")
            st.caption("Hover a point to see its face. Well-separated clusters are classes the model tells apart.")

with tab_runs:
    runs = st.multiselect(
        "Runs", ids, default=ranked[:OVERLAID_RUNS], format_func=checkpoints.name, help=checkpoints.ids_help(ids)
    )
    if runs:
        learning_curves({checkpoints.name(cid): meta_of[cid].history for cid in runs}, key="runs_curves")
        configs = pd.DataFrame(
            {checkpoints.name(cid): {k: str(v) for k, v in meta_of[cid].config.to_dict().items()} for cid in runs}
        )
        differing = configs[configs.nunique(axis=1) > 1] if len(runs) > 1 else configs
        st.markdown("**Config** (rows that differ between the runs)" if len(runs) > 1 else "**Config**")
        st.dataframe(differing, width="stretch")
        figures = pd.DataFrame(
            {
                checkpoints.name(cid): {k: v for k, v in asdict(meta_of[cid].test_metrics).items() if k != "per_class_accuracy"}
                for cid in runs
            }
        )
        percent = pd.IndexSlice[["accuracy", "top2_accuracy"], :]
        st.dataframe(
            figures.style.format("{:.3f}").format("{:.2%}", subset=percent).format("{:.0f}", subset=pd.IndexSlice[["n"], :]),
            width="stretch",
        )

with tab_own:
    own_data.render(ids, ranked)
