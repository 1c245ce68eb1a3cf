"""Studies: launch a study file in the background, follow its trials live, compare its points with intervals."""

import pandas as pd
import streamlit as st

from fer_core.data import DataError
from fer_core.failures.corruptions import HELD_OUT
from fer_core.models import list_models
from fer_core.studies.report import point_label, significance, with_interval
from fer_core.studies.runs import (
    UNFINISHED,
    cancel_study,
    cancel_trial,
    driver_alive,
    list_runs,
    read_trials,
    resume_in_background,
    save_composed,
    start_study,
    study_dir,
    trial_counts,
)
from fer_core.studies.spec import STUDY_FIELDS, Range, StudyError, compose_study, load_study, shipped_studies
from fer_core.training.jobs import JobBusy
from ui import cache, charts, checkpoints, datasets, glossary, page
from ui.curves import OVERLAID_RUNS, learning_curves

st.title("Studies")
st.markdown(
    "A study trains every point of its axes with several seeds (a file in `studies/`, format in "
    "`fer_core/studies/spec.py`) on Ray Tune, and reports each point with a 95% interval and its significance "
    "against the baseline. Every finished trial is an ordinary checkpoint: Overview, Evaluate and Explain list it."
)

RUN_KEY = "study_run"  # the run picker's key: a launch selects the run it started

data = st.text_input(  # outside both forms: either launch takes what the field shows
    "Dataset", value=datasets.default_dataset_path(), key="study_data", help="FER2013 as the Kaggle zip or folder, or fer2013.csv"
)
with st.form("launch_study"):
    files = {path.stem: path for path in shipped_studies()}
    c1, c2 = st.columns([3, 1])
    name = c1.selectbox("Study", list(files), key="study_file")
    profile = c2.selectbox("Profile", ["quick", "full"], help="quick: minutes on a CPU with a share of the faces")
    launched = st.form_submit_button("Launch", type="primary")
if launched:
    try:
        spec = load_study(files[name])
        st.session_state[RUN_KEY] = start_study(files[name], spec, profile, data.strip(), checkpoints=cache.store_root())
        st.toast(f"Study {name} ({profile}) started in the background")
    except JobBusy as exc:
        st.warning(str(exc))
    except (StudyError, DataError, OSError) as exc:
        st.error(f"Cannot launch: {exc}")

with st.expander("Compose a study", key="compose_expander"), st.form("compose_study"):
    c1, c2 = st.columns(2)
    composed_name = c1.text_input("Name", "my_study", help="letters, digits, - and _")
    models = c2.multiselect(
        "Models (an axis when several)",
        [m.name for m in list_models()],
        default=["keras_cnn"],
        accept_new_options=True,
        help="registered models, or type timm:<name> (timm:<name>@<px> for an input size) for any timm model",
    )
    c1, c2 = st.columns(2)
    axis = c1.selectbox("Axis", ["(none)", *STUDY_FIELDS], help="a TrainConfig field to vary")
    values = c2.text_input("Its values, comma-separated", "adam, sgd")
    c1, c2, c3, c4 = st.columns(4)
    seeds = c1.number_input("Seeds", 1, 10, 2)
    epochs = c2.number_input("Epochs", 1, 1000, 3)
    fraction = c3.slider("Quick: share of training faces", 0.05, 1.0, 0.1, 0.05)
    composed_profile = c4.selectbox("Profile", ["quick", "full"], key="composed_profile")
    if st.form_submit_button("Launch composed study"):
        try:
            text = compose_study(
                composed_name, models, None if axis == "(none)" else axis, values, int(seeds), int(epochs), float(fraction)
            )
            path = save_composed(composed_name, text)
            st.session_state[RUN_KEY] = start_study(
                path, load_study(path), composed_profile, data.strip(), checkpoints=cache.store_root()
            )
            st.toast(f"Study {composed_name} started in the background")
        except JobBusy as exc:
            st.warning(str(exc))
        except (StudyError, DataError, OSError) as exc:
            st.error(f"Cannot launch: {exc}")

runs = list_runs()
if not runs:
    st.info("No study has run yet: launch one above, or `python -m fer_core study run studies/keras_variants.toml`.")
    page.end_page()
ids = [r.study_id for r in runs]
if st.session_state.get(RUN_KEY) not in ids:
    st.session_state[RUN_KEY] = ids[0]
study_id = st.selectbox("Study run", ids, key=RUN_KEY)


def _done(study_id: str) -> int:
    return trial_counts(read_trials(study_dir(study_id))).get("done", 0)


@st.fragment(run_every=2)
def progress(study_id: str, done_when_drawn: int) -> None:
    """The run's trials as their status files say, refreshed every 2 s without rerunning the page; the whole page
    reruns when a trial finishes, so that its results below appear."""
    info = next((r for r in list_runs() if r.study_id == study_id), None)
    if info is None:
        st.warning(f"The run {study_id} is gone (its folder was removed).")
        return
    trials = read_trials(study_dir(study_id))
    counts = trial_counts(trials)
    if counts.get("done", 0) != done_when_drawn:
        st.rerun()
    st.markdown(
        f"**{info.state}** · profile {info.profile} · started {info.started_at} · "
        + " · ".join(f"{n} {s}" for s, n in counts.items())
    )
    if info.error:
        st.error(f"The run failed: {info.error}")
    if info.state == "interrupted":
        st.warning("This run's driver is gone (killed, or the machine restarted). Resume trains only its unfinished trials.")
        if st.button("Resume study", key=f"resume-{study_id}"):
            try:
                resume_in_background(study_id, cache.store_root())
            except (JobBusy, ValueError) as exc:
                st.warning(str(exc))
    if trials:
        rows = [
            {
                "trial": t.trial,
                "point": point_label(t.point) or "(chosen when it starts)",
                "seed": t.seed,
                "state": t.state,
                "progress": t.progress(),
                "val acc": "" if t.val_acc is None else f"{t.val_acc:.1%}",  # text: a number column shows None
                "checkpoint": t.checkpoint or "",
                "error": t.error or "",
            }
            for t in trials.values()
        ]
        st.dataframe(
            pd.DataFrame(rows),
            hide_index=True,
            width="stretch",
            column_config={
                "point": st.column_config.TextColumn(width="medium", pinned=True),  # stays in view while a phone scrolls
            },
        )
    if driver_alive(info):
        _cancel_buttons(study_id, info.state == "cancelling", [t.trial for t in trials.values() if t.state in UNFINISHED])


def _cancel_buttons(study_id: str, cancelling: bool, unfinished: list[str]) -> None:
    """Cancel the study, or one trial while the others go on; a cancel shows until the trials have stopped."""
    if cancelling:
        st.info(
            "Cancelling: running trials stop at their next batch (of training, validation or testing), queued ones "
            "never start; finished trials keep their checkpoints."
        )
    c1, c2, c3 = st.columns([1, 2, 1], vertical_alignment="bottom")
    if c1.button("Cancel study", key=f"cancel-{study_id}", disabled=cancelling):
        cancel_study(study_id)
        st.rerun()
    trial = c2.selectbox("Trial", unfinished, key=f"trial-{study_id}", disabled=cancelling or not unfinished)
    if c3.button("Cancel trial", key=f"cancel-trial-{study_id}", disabled=cancelling or trial is None):
        try:
            cancel_trial(study_id, str(trial))
            st.rerun()
        except ValueError as exc:  # it finished in the meantime
            st.warning(str(exc))


progress(study_id, _done(study_id))

try:
    report = checkpoints.study_report(study_id)
except (ValueError, OSError) as exc:  # a damaged run folder or trials tested on other faces: say so, keep serving
    st.error(f"No report for {study_id}: {exc}")
    page.end_page()
if not report.points:
    active = driver_alive(next(r for r in runs if r.study_id == study_id))
    st.caption(
        "Results appear here as trials finish."
        if active
        else "No trial of this run has a checkpoint: none finished, or they were deleted."
    )
    page.end_page()
st.subheader("Results (PrivateTest)")
st.caption(
    f"Baseline {point_label(report.baseline)}; * significant at 5% after Holm's correction (McNemar on the same "
    "test faces, each point's seed-averaged probabilities). Intervals: bootstrap 95% over the test faces. **Agreed "
    "labels**: accuracy on the faces whose FER2013 label is also the FER+ crowd's majority; **mCE**: corruption error "
    "against AlexNet (Failures page), once every trial's robustness is computed; **held-out mCE** the same over the "
    f"corruptions no training preset imitates ({', '.join(HELD_OUT)}): robustness that was not taught."
    + (f" ({report.robustness_note})" if report.robustness_note else "")
)
table = pd.DataFrame(
    [
        {
            "point": point_label(p.point),
            "seeds": p.seeds,
            "accuracy": p.accuracy_mean,
            "± std": p.accuracy_std,
            "95% CI": f"{p.accuracy_ci.low:.2%} – {p.accuracy_ci.high:.2%}",
            "macro F1": p.macro_f1_mean,
            "p (Holm)": significance(p),
            "agreed labels": with_interval(p.agreed_accuracy, p.agreed_ci, True),
            "mCE": with_interval(p.mce, p.mce_ci, False),
            "held-out mCE": with_interval(p.mce_held_out, p.mce_held_out_ci, False),
        }
        for p in report.points
    ]
)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={
        "point": st.column_config.TextColumn(width="medium", pinned=True),  # stays in view while a phone scrolls
        **glossary.percent_columns("accuracy"),
        "± std": st.column_config.NumberColumn(format="%.4f"),
        "macro F1": st.column_config.NumberColumn(format="%.3f"),
    },
)
st.altair_chart(charts.points_with_intervals(report.points), width="stretch")
ranges = {axis: values for axis, values in report.axes.items() if isinstance(values, Range)}
for column, (axis, axis_range) in zip(st.columns(len(ranges)) if ranges else [], ranges.items(), strict=True):
    column.altair_chart(charts.accuracy_along(report.points, axis, axis_range), width="stretch")
for failed in (t for t in report.failed if t.state == "failed"):
    st.warning(f"Trial {failed.trial} ({point_label(failed.point)}) seed {failed.seed} failed: {failed.error}")
stopped = [t for t in report.failed if t.state == "stopped"]
if stopped:
    st.caption(
        "Stopped early by ASHA, trailing the others at a rung (no checkpoint): "
        + "; ".join(f"{t.trial} after epoch {t.epoch} ({point_label(t.point)})" for t in stopped)
    )

trial_label = {t.checkpoint: f"{t.trial} · {point_label(t.point)}" for t in report.trials}  # apart within a study
shown = st.multiselect(
    "Learning curves of trials",
    list(trial_label),
    default=list(trial_label)[:OVERLAID_RUNS],  # overlaid; more trials get a panel each
    format_func=trial_label.__getitem__,
    help=checkpoints.ids_help(list(trial_label)),
)
metas = checkpoints.metas(trials=True)  # this page is where trials are shown whatever the sidebar says
if shown:
    learning_curves({trial_label[cid]: metas[cid].history for cid in shown if cid in metas}, key="trial_curves")
    for cid in shown:
        link = f"Evaluate {checkpoints.name(cid)}"
        st.page_link("app_pages/evaluate.py", label=link, icon=":material/analytics:", query_params={"model": cid})

with st.expander("This run's checkpoints: hide or delete them all", key="study_checkpoints"):  # open as trials land above
    run_ids = [t.checkpoint for t in report.trials]
    hidden = checkpoints.hidden()
    shown_ids = [cid for cid in run_ids if cid not in hidden]
    st.caption(
        f"{len(run_ids)} checkpoints, {len(run_ids) - len(shown_ids)} hidden. Study trials stay out of the leaderboard "
        "and the pickers unless the sidebar shows them; hidden ones stay out even then. This report reads them either "
        "way; deleting them removes their files, and the report, for good."
    )
    c1, c2, c3 = st.columns([1, 2, 1], vertical_alignment="bottom")
    if shown_ids:
        hide_all = f"Hide all {len(shown_ids)}"
        c1.button(hide_all, on_click=checkpoints.set_hidden, args=(shown_ids, True), icon=":material/visibility_off:")
    else:
        c1.button(
            f"Show all {len(run_ids)}", on_click=checkpoints.set_hidden, args=(run_ids, False), icon=":material/visibility:"
        )
    sure = c2.checkbox(f"Delete the {len(run_ids)} checkpoints of {study_id} for good", key=f"sure-{study_id}")
    c3.button("Delete all", disabled=not sure, on_click=checkpoints.delete, args=(run_ids,), icon=":material/delete:")
    if problem := st.session_state.pop("delete_error", None):
        st.error(f"Not deleted: {problem}")
