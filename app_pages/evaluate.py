"""Evaluate: every view reads the predictions stored with each checkpoint; only the embedding runs a model."""

import pandas as pd
import streamlit as st

from fer_core.evaluation import compute_metrics, ensemble_probs, headline, mcnemar, misclassified
from ui import charts, state

st.title("Evaluate")

good = state.require_checkpoints()
ids = [c.id for c in good]
meta_of = {c.id: c.meta for c in good}


def model_panel(cid: str, key: str) -> None:
    ev = state.evaluation(cid)
    m, classes = ev["metrics"], meta_of[cid]["classes"]
    c = st.columns(4)
    c[0].metric("accuracy", f"{m['accuracy']:.2%}")
    c[1].metric("macro F1", f"{m['macro_f1']:.3f}")
    c[2].metric("top-2", f"{m['top2_accuracy']:.2%}")
    c[3].metric("ECE", f"{m['ece']:.3f}")
    normalized = st.toggle("Row-normalised", True, key=f"norm-{key}")
    st.altair_chart(charts.confusion_heatmap(m["confusion_matrix_normalized" if normalized else "confusion_matrix"], classes,
                                             normalized), width="stretch")
    st.altair_chart(charts.per_class_bars({cid: m["per_class_accuracy"]}), width="stretch")


tab_one, tab_two, tab_all, tab_ens, tab_emb, tab_runs = st.tabs(
    ["One model", "Two models", "All models", "Ensemble", "Embedding", "Runs"])

with tab_one:
    cid = st.selectbox("Model", ids, key="one")
    meta = meta_of[cid]
    ev = state.evaluation(cid)
    if meta.get("card"):
        st.info(meta["card"])
    model_panel(cid, "one")
    report = pd.DataFrame(ev["metrics"]["classification_report"]).T
    st.markdown("**Classification report**")
    st.dataframe(report.style.format("{:.3f}"), width="stretch")
    left, right = st.columns(2)
    left.markdown("**ROC (one-vs-rest)**")
    left.altair_chart(charts.roc_chart(ev["metrics"]["roc"]), width="stretch")
    left.caption(f"micro-average AUC {ev['metrics']['micro_auc']:.3f}")
    right.markdown("**Calibration** (bars on the diagonal = calibrated)")
    right.altair_chart(charts.reliability_chart(ev["metrics"]["reliability"]), width="stretch")
    history = meta.get("history", [])
    left, right = st.columns(2)
    left.altair_chart(charts.training_curves({cid: history}, "loss"), width="stretch")
    right.altair_chart(charts.training_curves({cid: history}, "acc"), width="stretch")

    st.markdown("**Misclassified test faces**")
    data = state.dataset_for(meta)
    if data is None:
        st.info("The dataset this model was tested on was not found (set FER_DATA) so faces cannot be shown.")
    else:
        classes = meta["classes"]
        c1, c2, c3 = st.columns(3)
        true_cls = c1.selectbox("True class", ["any"] + classes)
        pred_cls = c2.selectbox("Predicted class", ["any"] + classes)
        limit = c3.number_input("Show at most", 8, 200, 40, step=8)
        wrong = misclassified(ev["probs"], ev["labels"], None if true_cls == "any" else classes.index(true_cls),
                              None if pred_cls == "any" else classes.index(pred_cls))
        index = state.faces_by_name(data)
        shown = [i for i in wrong if ev["names"][i] in index][: int(limit)]
        st.caption(f"{len(wrong)} misclassified faces match; showing {len(shown)}, the most confident mistakes first "
                   "(often a label that looks wrong: FER2013's labels are noisy, see Overview).")
        if shown:
            st.image([charts.upscale(data.images[index[ev["names"][i]], 0].numpy(), 96) for i in shown],
                     caption=[f"{classes[ev['labels'][i]]}→{classes[ev['probs'][i].argmax()]} {ev['probs'][i].max():.0%}"
                              for i in shown], width=96)

with tab_two:
    if len(ids) < 2:
        st.info("Train a second model to compare two.")
    else:
        c1, c2 = st.columns(2)
        a = c1.selectbox("Model A", ids, index=0, key="a")
        b = c2.selectbox("Model B", ids, index=1, key="b")
        with c1:
            model_panel(a, "a")
        with c2:
            model_panel(b, "b")
        ea, eb = state.evaluation(a), state.evaluation(b)
        if ea["names"] != eb["names"]:
            st.warning("These models were tested on different faces: McNemar's test needs the same test set.")
        else:
            r = mcnemar(ea["probs"].argmax(1), eb["probs"].argmax(1), ea["labels"])
            verdict = "a significant" if r.significant else "no significant"
            st.markdown(f"**McNemar's test** ({r.statistic}): A alone right on {r.only_a_correct} faces, B alone on "
                        f"{r.only_b_correct}; p = {r.p_value:.4g}: {verdict} difference at the 5% level.")

with tab_all:
    table = pd.DataFrame([{"id": cid, **{k: v for k, v in headline(state.evaluation(cid)["metrics"]).items()
                                         if k != "per_class_accuracy"}} for cid in ids])
    st.dataframe(table, hide_index=True, width="stretch")
    st.altair_chart(charts.per_class_heatmap({cid: state.evaluation(cid)["metrics"]["per_class_accuracy"] for cid in ids}),
                    width="stretch")

with tab_ens:
    members = st.multiselect("Members (mean of probabilities)", ids, default=ids)
    groups = {tuple(state.evaluation(cid)["names"]) for cid in members}
    if len(members) < 2:
        st.info("Pick at least two models.")
    elif len(groups) != 1 or len({tuple(meta_of[c]["classes"]) for c in members}) != 1:
        st.warning("Ensemble members must share the test set and classes.")
    else:
        first = state.evaluation(members[0])
        probs = ensemble_probs([state.evaluation(c)["probs"] for c in members])
        m = compute_metrics(probs, first["labels"], meta_of[members[0]]["classes"])
        best = max(members, key=lambda c: state.evaluation(c)["metrics"]["accuracy"])
        c1, c2, c3 = st.columns(3)
        c1.metric("ensemble accuracy", f"{m['accuracy']:.2%}",
                  f"{m['accuracy'] - state.evaluation(best)['metrics']['accuracy']:+.2%} vs best member")
        c2.metric("macro F1", f"{m['macro_f1']:.3f}")
        c3.metric("ECE", f"{m['ece']:.3f}")
        st.altair_chart(charts.confusion_heatmap(m["confusion_matrix_normalized"], meta_of[members[0]]["classes"], True),
                        width="stretch")

with tab_emb:
    cid = st.selectbox("Model", ids, key="emb")
    n = st.slider("Test faces", 200, 2000, 600, step=100)
    if state.dataset_for(meta_of[cid]) is None:
        st.info("The test faces are needed for this view: FER2013 was not found (set FER_DATA).")
    elif st.button("Compute t-SNE of penultimate-layer features"):
        emb = state.embedding(cid, n, state.store_signature())
        st.altair_chart(charts.embedding_scatter(emb.xy, emb.labels, emb.predicted, emb.faces), width="stretch")
        st.caption("Hover a point to see its face. Well-separated clusters are classes the model tells apart.")

with tab_runs:
    runs = st.multiselect("Runs", ids, default=ids[: min(5, len(ids))])
    if runs:
        histories = {cid: meta_of[cid].get("history", []) for cid in runs}
        c1, c2 = st.columns(2)
        c1.altair_chart(charts.training_curves(histories, "loss"), width="stretch")
        c2.altair_chart(charts.training_curves(histories, "acc"), width="stretch")
        configs = pd.DataFrame({cid: {k: str(v) for k, v in meta_of[cid]["config"].items()} for cid in runs})
        differing = configs[configs.nunique(axis=1) > 1] if len(runs) > 1 else configs
        st.markdown("**Config** (rows that differ between the runs)" if len(runs) > 1 else "**Config**")
        st.dataframe(differing, width="stretch")
        st.dataframe(pd.DataFrame({cid: {k: v for k, v in meta_of[cid]["test_metrics"].items() if k != "per_class_accuracy"}
                                   for cid in runs}), width="stretch")
