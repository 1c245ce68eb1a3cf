"""Failures: where and why each model fails, models side by side. Its own page rather than Evaluate tabs: every
view here compares models on one question (which labels are wrong, which conditions break them, where they look),
while Evaluate's tabs look at one model's predictions; and its long computations run in the background here."""

from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st

from fer_core.data import DataError
from fer_core.data.ferplus import VOTE_LABELS
from fer_core.failures.background import BackgroundJob
from fer_core.failures.corruptions import HELD_OUT, SUITE, get_corruption
from fer_core.failures.label_noise import BUCKET_LABELS, BUCKET_SHORT, BUCKETS, LabelNoise
from fer_core.failures.robustness import (
    CLEAN,
    DEFAULT_SEVERITIES,
    RobustnessReport,
    RobustnessRun,
    condition,
    conditions,
    default_reference,
    ensemble_run,
    estimated_seconds,
    report,
)
from fer_core.leaderboard import ranked_checkpoints
from fer_core.records import Predictions
from ui import charts, checkpoints, failures, glossary, own_data_results, page

st.title("Failures")
st.caption(
    "Where and why each model fails: test errors that are the labels' rather than the model's (against the FER+ "
    "crowd's ten votes per face), accuracy under what real photos and video do to faces, and what the models look at."
)
page.require_checkpoints()
meta_of = checkpoints.metas()
ranked = ranked_checkpoints(meta_of.values())
fer2013 = [cid for cid in ranked if meta_of[cid].data.label_source == "fer2013"]
PANELS_PER_ROW = 4
ENSEMBLE = "ensemble"  # the robustness tab's key for the chosen models' mean (not a checkpoint id: ids carry a date)
SHOWN_FACES = 24


def pick_models(options: list[str], key: str, default: int) -> list[str]:
    return st.multiselect(
        "Models", options, default=options[:default], format_func=checkpoints.name, key=key, help=checkpoints.ids_help(options)
    )


def explain_link(face: str, cid: str) -> None:
    st.page_link(
        "app_pages/explain.py", label="Explain this face", icon=":material/visibility:", query_params={"face": face, "model": cid}
    )


def face_grid(faces: list, captions: list[str]) -> None:
    st.image([charts.upscale(f, 96) for f in faces], caption=captions, width=96)


def job_progress(kind: str) -> None:
    """The running (or last) background job of this kind: progress, estimate, errors and Cancel; redrawn every 2 s
    while it runs, and the page once when it ends (to draw what it computed)."""
    job = failures.job(kind)
    if job is None:
        return

    @st.fragment(run_every=2 if job.status().running else None)
    def progress() -> None:
        job_status(kind, job)

    progress()


def job_status(kind: str, job: BackgroundJob) -> None:
    status = job.status()
    if status.running:
        eta = f", about {status.eta_s / 60:.1f} min left" if status.eta_s is not None else ""
        st.progress(status.fraction, text=f"{status.message} ({status.fraction:.0%}{eta})")
        if st.button("Cancel after this model", key=f"cancel-{kind}", disabled=status.cancelled):
            job.cancel()
    elif status.cancelled:
        st.info(f"Cancelled after {status.elapsed_s / 60:.1f} min; the models it finished are kept.")
    for error in status.errors:
        st.error(error)
    if not status.running and st.session_state.get(f"{kind}-seen") != id(job):
        st.session_state[f"{kind}-seen"] = id(job)
        st.rerun()  # draw what it computed


def compute_button(kind: str, missing: list[str], minutes: float, start: Callable[[list[str]], None]) -> None:
    job = failures.job(kind)
    if job is not None and job.status().running:
        return
    names = ", ".join(checkpoints.name(cid) for cid in missing)
    if st.button(f"Compute for {len(missing)} model(s) (about {minutes:.0f} min here)", key=f"start-{kind}", help=names):
        start(missing)
        st.rerun()


def label_noise_tab() -> None:
    if not fer2013:
        st.info("Label noise judges FER2013 labels against the FER+ crowd: no model here was trained on FER2013 labels.")
        return
    chosen = pick_models(fer2013, "noise-models", 6)
    with_ensemble = st.toggle("Add their ensemble (mean of probabilities)", value=len(chosen) > 1, disabled=len(chosen) < 2)
    subjects: dict[str, tuple[str, ...]] = {checkpoints.name(cid): (cid,) for cid in chosen}
    if with_ensemble and len(chosen) > 1:
        subjects[f"ensemble of {len(chosen)}"] = tuple(chosen)
    noise = None
    try:
        noise = {label: failures.label_noise(label, members) for label, members in subjects.items()}
    except DataError as exc:
        st.warning(f"{exc}. Without the crowd's votes, cleanlab's flags below still point at labels that look wrong.")
    if noise:
        noise_summary(noise)
        pick = st.selectbox("Model", list(noise), key="noise-one")
        noise_per_class(noise[pick])
        noise_faces(noise[pick], subjects[pick][0])
    cleanlab_section(chosen, noise is not None)


def noise_summary(noise: dict[str, LabelNoise]) -> None:
    """Each model's errors in the crowd's buckets, as bars and as a table with the accuracies against the crowd."""
    st.altair_chart(charts.bucket_bars({k: v.counts() for k, v in noise.items()}, BUCKET_SHORT), width="stretch")
    rows = []
    for label, n in noise.items():
        counts, crowd_acc, agreed = n.counts(), n.crowd_accuracy(), n.agreed_accuracy()
        rows.append(
            {
                "model": label,
                "errors": n.errors,
                "crowd agrees with the model": f"{counts[BUCKETS[1]]} ({n.crowd_sides_with_model:.0%})",
                "crowd agrees with the label": counts[BUCKETS[2]],
                "with neither": counts[BUCKETS[3]],
                "no majority": counts[BUCKETS[4]],
                "accuracy vs crowd": f"{crowd_acc.value:.1%} [{crowd_acc.ci.low:.1%}, {crowd_acc.ci.high:.1%}]",
                "accuracy, agreed labels": f"{agreed.value:.1%} [{agreed.ci.low:.1%}, {agreed.ci.high:.1%}]",
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    first = next(iter(noise.values()))
    st.caption(
        f"PrivateTest's {first.faces} faces. Errors count against FER2013's label; the crowd is the FER+ majority "
        "(Microsoft's rule: single votes dropped, more than half of the rest). **Accuracy vs crowd** is over the "
        f"{first.crowd_accuracy().faces} faces whose majority is one of the model's classes ({first.outside_classes} "
        "more have a majority it cannot predict, such as contempt); **agreed labels** over the "
        f"{first.agreed_accuracy().faces} faces whose FER2013 label is the crowd's majority: a ranking there is not a "
        "ranking of label noise. Brackets: bootstrap 95% intervals."
    )


def noise_per_class(one: LabelNoise) -> None:
    """One model's buckets and accuracies per class."""
    per_class = pd.DataFrame(
        [
            {"class": c.name, "faces": c.faces, **{BUCKET_SHORT[b]: c.counts[b] for b in BUCKETS}}
            | {"errors the crowd sides with": c.crowd_sides_with_model}
            | {"accuracy vs crowd": c.crowd_accuracy.value, "accuracy, agreed labels": c.agreed_accuracy.value}
            for c in one.per_class()
        ]
    )
    st.dataframe(
        per_class,
        hide_index=True,
        width="stretch",
        column_config=glossary.percent_columns("errors the crowd sides with", "accuracy vs crowd", "accuracy, agreed labels")
        | {BUCKET_SHORT[b]: st.column_config.NumberColumn(help=BUCKET_LABELS[b]) for b in BUCKETS},  # short: fit a phone
    )


def noise_faces(one: LabelNoise, faces_of: str) -> None:
    """The faces of a bucket (and a FER2013 label), each with the crowd's ten votes and a link to Explain."""
    c1, c2 = st.columns(2)
    bucket = c1.selectbox("Faces in", list(BUCKETS[1:]), format_func=lambda b: BUCKET_LABELS[b], key="noise-bucket")
    true_class = c2.selectbox("FER2013 label", ["any", *one.predictions.classes], key="noise-class")
    positions = one.faces_in(bucket, None if true_class == "any" else true_class)
    faces = failures.test_faces(faces_of)
    if faces is None:
        st.info("The test faces are needed to show them: FER2013 was not found (set FER_DATA).")
    elif len(positions):
        p = one.predictions
        shown = positions[:SHOWN_FACES]
        st.caption(f"{len(positions)} faces; the first {len(shown)} (label → prediction, crowd's majority)")
        face_grid(
            [faces[i] for i in shown],
            [
                f"{k}: {p.classes[p.labels[i]]}→{p.classes[p.predicted[i]]}, {one.crowd.majority[i] or 'none'}"
                for k, i in enumerate(shown, 1)
            ],
        )
        which = st.selectbox("Face", range(len(shown)), format_func=lambda k: f"{k + 1}: {p.names[shown[k]]}", key="noise-face")
        st.altair_chart(charts.vote_bars(one.crowd.votes[shown[which]].tolist(), VOTE_LABELS), width="stretch")
        explain_link(p.names[shown[which]], faces_of)
    else:
        st.caption("No face there.")


def cleanlab_section(chosen: list[str], crowd_found: bool) -> None:
    st.subheader("Label issues without a relabelling (cleanlab)")
    st.caption(
        "Confident learning (cleanlab) flags faces whose label is unlikely given a model's out-of-sample probabilities: "
        "what a dataset of yours has instead of a crowd. How far to trust its flags is measured here against FER+."
    )
    if not chosen:
        return
    flagger = st.selectbox("Model whose predictions flag", chosen, format_func=checkpoints.name, key="flagger")
    flags = failures.issues(checkpoints.name(flagger), (flagger,))
    trust = ""
    if crowd_found:
        agreement = failures.flag_agreement(checkpoints.name(flagger), (flagger,))
        trust = (
            f"On PrivateTest, {agreement.precision:.0%} of its {agreement.flagged} flags are faces the FER+ crowd also "
            f"disputes (a random face: {agreement.crowd_disagrees / agreement.faces:.0%}), and they find "
            f"{agreement.recall:.0%} of the {agreement.crowd_disagrees} disputed faces."
        )
        st.markdown(trust)
    faces = failures.test_faces(flagger)
    shown = flags.flagged[:SHOWN_FACES]
    st.caption(
        f"{len(flags.flagged)} of {flags.faces} test faces flagged"
        + f"; the {len(shown)} surest first (label → model)" * bool(len(shown))
    )
    if faces is not None and len(shown):
        flagged_grid([faces[i] for i in shown], checkpoints.predictions(flagger), shown)
    if own_data_results.datasets():
        own_data_flags(flagger, trust)


def own_data_flags(flagger: str, trust: str) -> None:
    """The same model's flags on a dataset of the user's, with the trust measured on FER2013 beside them."""
    names = own_data_results.names()
    fingerprint = st.selectbox("Your dataset", list(own_data_results.datasets()), format_func=names.__getitem__, key="own-flags")
    results = own_data_results.results(fingerprint)
    if flagger not in results:
        st.caption(f"{checkpoints.name(flagger)} has not been run on it: Evaluate > Your data runs it.")
        return
    flags = failures.external_issues(fingerprint, flagger)
    st.markdown(f"**{names[fingerprint]}**: {len(flags.flagged)} of {flags.faces} faces flagged. {trust}")
    faces, predictions = failures.external_faces(fingerprint), results[flagger].predictions
    shown = flags.flagged[:SHOWN_FACES]
    flagged_grid([faces[predictions.names[i]] for i in shown], predictions, shown)


def flagged_grid(images: list[np.ndarray], p: Predictions, shown: np.ndarray) -> None:
    """Flagged faces, each captioned with its label and the model's class (label → model)."""
    face_grid(images, [f"{p.classes[p.labels[i]]}→{p.classes[p.predicted[i]]}" for i in shown])


def robustness_tab() -> None:
    st.caption(
        "Every test face degraded as real photos and video degrade them, at five severities each (0: clean). Corruption "
        "error (CE) is the model's summed error over severities over the reference model's (Hendrycks & Dietterich "
        "normalise by AlexNet); mCE its mean over the corruptions, relative mCE the same over the drop from clean. Below "
        "1: more robust than the reference. The flip is a control (faces are roughly symmetric), left out of mCE. "
        "Occlusion bands are where eyes and mouths usually are: FER2013's faces are only roughly aligned. "
        f"**Held-out mCE** is over {', '.join(HELD_OUT)} alone: no training preset imitates them (the robust presets "
        "imitate the others), so it shows robustness that was not taught."
    )
    with st.expander("What each severity is"):
        st.markdown("\n".join(f"- {c.describe()}" for c in SUITE))
    chosen, all_five, keys, reference = robustness_choices()
    wanted = list(dict.fromkeys([*chosen, *([reference] if reference != "none" else [])]))
    runs = failures.cached_robustness(wanted, keys)
    missing = [cid for cid in wanted if cid not in runs]
    if missing:
        minutes = sum(estimated_seconds(meta_of[c], len(keys)) for c in missing) / 60
        st.info(f"Not computed yet for {', '.join(checkpoints.name(c) for c in missing)} (cached once done).")
        compute_button("robustness", missing, minutes, lambda ids: failures.start_robustness(ids, keys))
    job_progress("robustness")
    ref_run = runs.get(reference)
    members = [cid for cid in chosen if cid in runs]
    if len(members) > 1 and st.toggle("Add their ensemble (mean of probabilities)", key="robust-ensemble"):
        runs = runs | {ENSEMBLE: ensemble_run([runs[cid] for cid in members])}
        chosen = [*chosen, ENSEMBLE]

    def label(cid: str) -> str:
        return f"ensemble of {len(members)}" if cid == ENSEMBLE else checkpoints.name(cid)

    reports = {cid: report(runs[cid], ref_run) for cid in chosen if cid in runs}
    if not reports:
        return
    order = sorted(reports, key=lambda c: (reports[c].mce is None, reports[c].mce or 0, -reports[c].mean_corrupted_accuracy))
    robustness_table(reports, order, label)
    if ref_run is None and reference != "none":
        st.caption(f"{checkpoints.name(reference)} is still to be computed: CE appears when it is.")
    elif next(iter(reports.values())).reference_note:
        st.caption(next(iter(reports.values())).reference_note)
    corruptions = robustness_panels(reports, order, label)
    broken_faces(runs, order, label, members, corruptions, all_five)


def robustness_choices() -> tuple[list[str], bool, tuple[str, ...], str]:
    """The models, the severities (and so the conditions) and the reference model CE is normalised by."""
    chosen = pick_models(ranked, "robust-models", 5)
    all_five = st.toggle("All five severities (default 1, 3 and 5: 40% less to compute)", key="all-five")
    keys = tuple(conditions(severities=None if all_five else DEFAULT_SEVERITIES))
    first = meta_of[chosen[0]] if chosen else None
    same_faces = [cid for cid in ranked if first and meta_of[cid].data.fingerprint == first.data.fingerprint]
    default_ref = default_reference(meta_of.values(), first) if first else None
    options = ["none", *same_faces]
    reference = st.selectbox(
        "Reference for CE",
        options,
        index=options.index(default_ref) if default_ref else 0,
        format_func=lambda c: "none (accuracies only)" if c == "none" else checkpoints.name(c),
        key="reference",
    )
    return chosen, all_five, keys, reference


def robustness_table(reports: dict[str, RobustnessReport], order: list[str], label: Callable[[str], str]) -> None:
    """One row per model, most robust first: clean accuracy, mCE (seen and held out), relative mCE."""
    table = pd.DataFrame(
        [
            {
                "model": label(cid),
                "clean": r.clean_accuracy,
                "mCE": r.mce,
                "seen mCE": r.mce_seen,
                "held-out mCE": r.mce_held_out,
                "relative mCE": r.relative_mce,
                "mean corrupted accuracy": r.mean_corrupted_accuracy,
                "worst corruption": r.worst,
                "id": "" if cid == ENSEMBLE else cid,
            }
            for cid, r in ((c, reports[c]) for c in order)
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config=glossary.percent_columns("clean", "mean corrupted accuracy")
        | {column: st.column_config.NumberColumn(format="%.3f") for column in ("mCE", "seen mCE", "held-out mCE")}
        | {"relative mCE": st.column_config.NumberColumn(format="%.3f"), "id": st.column_config.TextColumn("checkpoint id")},
    )


def robustness_panels(reports: dict[str, RobustnessReport], order: list[str], label: Callable[[str], str]) -> list[str]:
    """Accuracy against severity, a panel per corruption; returns the corruptions in the suite's order."""
    names = [label(c) for c in order]
    st.altair_chart(charts.model_legend(names), width="content")
    corruptions = [s.corruption for s in next(iter(reports.values())).scores]
    for start in range(0, len(corruptions), PANELS_PER_ROW):
        for column, name in zip(st.columns(PANELS_PER_ROW), corruptions[start : start + PANELS_PER_ROW], strict=False):
            curves = {
                label(c): {
                    0: reports[c].clean_accuracy,
                    **next(s.accuracy for s in reports[c].scores if s.corruption == name),
                }
                for c in order
            }
            column.altair_chart(charts.robustness_panel(curves, name.replace("_", " "), names), width="stretch")

    return corruptions


def broken_faces(
    runs: dict[str, RobustnessRun],
    order: list[str],
    label: Callable[[str], str],
    members: list[str],
    corruptions: list[str],
    all_five: bool,
) -> None:
    """Per-class accuracy under one corruption and severity, and the faces it broke beside their clean selves."""
    st.markdown("**Per class, and the faces a corruption broke**")
    c1, c2, c3 = st.columns(3)
    cid = c1.selectbox("Model", order, format_func=label, key="robust-one")
    name = c2.selectbox("Corruption", corruptions, key="robust-corruption")
    severity = c3.selectbox(
        "Severity",
        [s for s in get_corruption(name).severities if all_five or s in DEFAULT_SEVERITIES],
        key="robust-severity",
    )
    run = runs[cid]
    key = condition(name, severity)
    per_condition = {"clean": run.per_class_accuracy(CLEAN)} | {
        f"{n} @{severity}": run.per_class_accuracy(condition(n, severity))
        for n in corruptions
        if condition(n, severity) in run.predictions
    }
    st.altair_chart(charts.per_class_heatmap(per_condition), width="stretch")
    broken = run.wrong(key)
    faces_of = members[0] if cid == ENSEMBLE else cid  # an ensemble's members share their test faces
    faces, degraded = failures.test_faces(faces_of), failures.corrupted(faces_of, name, severity)
    st.caption(f"{name} at severity {severity}: {len(broken)} faces right when clean, wrong after (clean face, then degraded)")
    if faces is not None and degraded is not None and len(broken):
        shown = broken[: SHOWN_FACES // 2]
        p, q = run.clean, run.predictions[key]
        pairs = [face for i in shown for face in (faces[i], degraded[i])]
        captions = [t for i in shown for t in (p.classes[p.labels[i]], f"→{q.classes[q.predicted[i]]}")]
        face_grid(pairs, captions)
        which = st.selectbox("Face", range(len(shown)), format_func=lambda k: f"{k + 1}: {p.names[shown[k]]}", key="robust-face")
        explain_link(p.names[shown[which]], faces_of)


def saliency_tab() -> None:
    st.caption(
        "Per class, the mean Grad-CAM (what the last convolutional layer used for the class it predicted) over faces "
        "the model got right and over faces it got wrong, each drawn over the mean of those faces; and how much greying "
        "each cell of a 4x4 grid costs the true class's probability (red: the model reads that region for the class). "
        "Each Grad-CAM is scaled to its own peak; the grid to the model's largest cost. At most 60 faces per class and "
        "outcome, seeded."
    )
    chosen = pick_models(ranked, "look-models", 3)
    maps = failures.cached_saliency(chosen)
    missing = [cid for cid in chosen if cid not in maps]
    if missing:
        st.info(f"Not computed yet for {', '.join(checkpoints.name(c) for c in missing)}.")
        compute_button("saliency", missing, 1.0 * len(missing), failures.start_saliency)
    job_progress("saliency")
    for cid, found in maps.items():
        st.markdown(f"**{checkpoints.name(cid)}**")
        for title, images, captions in failures.saliency_rows(found):
            st.caption(title)
            st.image(images, caption=captions, width=100)


tab_noise, tab_robust, tab_look = st.tabs(["Label noise", "Robustness", "What models look at"])
with tab_noise:
    label_noise_tab()
with tab_robust:
    robustness_tab()
with tab_look:
    saliency_tab()
