"""Predict: photos, a webcam snapshot, the live camera or a video file -> faces -> every selected model side by
side, plus their ensemble."""

import json

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from fer_core.choices import DEFAULT_DETECTOR, DETECTOR_NAMES
from fer_core.leaderboard import WEAK_POINTS, default_ensemble
from fer_core.predict import Ensemble, PhotoPrediction
from ui import charts, checkpoints, failures, page, photos

st.title("Predict")

good = page.require_checkpoints()

MODES = ("Photos", "Live", "Video file")
mode = st.segmented_control("Input", MODES, default="Photos", key="predict_mode") or "Photos"
ids = [c.id for c in good]
moving = mode != "Photos"  # the live stream and videos default to fast, robust models: every frame runs them all
defaults = failures.moving_defaults() if moving else None
c1, c2 = st.columns([3, 1])
chosen = c1.multiselect(
    "Models",
    ids,
    default=defaults.ids if defaults else default_ensemble(checkpoints.metas().values()),
    key=f"predict_models_{mode}",
    format_func=checkpoints.name,
    help=checkpoints.ids_help(
        ids,
        "Moving pictures: fast models that hold up on degraded faces by default; photos: the leaderboard's default "
        f"ensemble (the most common class list within {WEAK_POINTS:.0f} points of its best). Study trials are listed "
        "only while the sidebar shows them.",
    ),
)
if defaults:
    chosen_by = ", ".join(
        checkpoints.name(cid) + (f" (mCE {defaults.mce[cid]:.2f})" if cid in defaults.mce else "") for cid in defaults.ids
    )
    c1.caption(
        f"Default: {chosen_by}: {defaults.reason}, as measured on Failures > Robustness (webcams and streams blur, "
        "compress and shrink faces; every frame runs every model)."
    )
detector = c2.selectbox(
    "Face detector",
    DETECTOR_NAMES,
    index=DETECTOR_NAMES.index(DEFAULT_DETECTOR),
    help="MTCNN is the default: fewer false faces on logos and clothing than the Haar cascade",
)
backends = checkpoints.predict_backends(chosen)
faster = [cid for cid, backend in backends.items() if backend == "onnxruntime"]
with st.expander(  # keyed: its label counts the chosen models, and a new label would close it on every choice
    f"Backends: ONNX Runtime for {len(faster)} of {len(chosen)} models" if chosen else "Backends", key="predict_backends"
):
    st.caption(
        "Each model runs on ONNX Runtime where this machine measured it faster than PyTorch, else on PyTorch. "
        "Measuring exports each model to ONNX once (checked against PyTorch on test faces) and times both."
    )
    if faster:
        st.caption("On ONNX Runtime: " + ", ".join(map(checkpoints.name, faster)))
    if st.button("Measure the selected models", key="measure_backends"):
        try:
            with st.spinner("Exporting and timing each model…"):
                speeds = checkpoints.measure_backends(chosen)
            st.dataframe(
                [
                    {
                        "model": checkpoints.name(cid),
                        "PyTorch ms": s.torch_ms,
                        "ONNX Runtime ms": s.onnxruntime_ms,
                        "runs on": s.faster,
                    }
                    for cid, s in speeds.items()
                ],
                hide_index=True,
            )
        except (ValueError, OSError) as exc:  # ExportError, DataError (no test faces to check against)
            st.error(f"Cannot measure: {exc}")
if not chosen:
    st.warning("Select at least one model.")
    page.end_page()
if mode == "Live":
    from ui import live

    live.render(chosen, detector)
    page.end_page()
if mode == "Video file":
    from ui import video

    video.render(chosen, detector)
    page.end_page()
metas = checkpoints.metas()
with st.expander("Ensemble members (each face's verdict is their mean)"):
    members = st.multiselect(
        "Members",
        chosen,
        default=default_ensemble(metas[cid] for cid in chosen),
        format_func=checkpoints.name,
        help=checkpoints.ids_help(
            chosen,
            f"By default the models of the most common class list within {WEAK_POINTS:.0f} points of its best "
            "test accuracy (weaker ones and other class lists left out)",
        ),
    )


def verdicts(result: PhotoPrediction, ensembles: list[Ensemble | None], column: DeltaGenerator) -> None:
    """Each face's verdict (the ensemble's, else the models' single answer) and any disagreement."""
    for n, (fp, ensemble) in enumerate(zip(result.faces, ensembles, strict=True), 1):
        votes = fp.votes()
        verdict = f"ensemble of {len(ensemble.members)}: **{ensemble.label}**" if ensemble else f"**{next(iter(votes))}**"
        if fp.face.detected:
            where = f"**Face {n}**"
        else:
            where = "**Whole image** (no face)" if result.no_face_found else f"**Whole image** ({fp.face.note})"
        column.markdown(f"{where}: {verdict}")
        if len(votes) > 1 and fp.face.detected:
            column.warning(
                f"The models disagree on face {n}: "
                + "; ".join(
                    f"{label} ({len(ids)})" if len(ids) > 2 else f"{label} ({', '.join(map(checkpoints.name, ids))})"
                    for label, ids in votes.items()
                )
            )


def downloads(result: PhotoPrediction, name: str, index: int, members: list[str], column: DeltaGenerator) -> None:
    """The photo's predictions as CSV and as the CLI's `--json` shape, with each face's ensemble verdict."""
    stem = name.rsplit(".", 1)[0]
    csv_col, json_col = column.columns(2)
    csv_col.download_button(
        "Predictions (.csv)", result.to_csv(members), f"{stem}-predictions.csv", "text/csv", on_click="ignore", key=f"csv-{index}"
    )
    as_json = json.dumps({"images": [result.to_json(members)]}, indent=2)
    json_col.download_button(
        "Predictions (.json)", as_json, f"{stem}-predictions.json", "application/json", on_click="ignore", key=f"json-{index}"
    )


def probability_grids(result: PhotoPrediction, ensembles: list[Ensemble | None]) -> None:
    """Per face: the model's 48x48 input beside every model's (and the ensemble's) class probabilities."""
    for n, (fp, ensemble) in enumerate(zip(result.faces, ensembles, strict=True), 1):
        per_model = {f"ensemble (mean of {len(ensemble.members)})": ensemble.probabilities} if ensemble else {}
        per_model |= {checkpoints.name(cid): pred.probabilities for cid, pred in fp.predictions.items()}
        face_col, grid_col = st.columns([1, 6])
        face_col.image(
            charts.upscale(fp.face.face, 120),
            caption=f"{'face ' + str(n) if fp.face.detected else 'whole image'}: model input (48x48)",
        )
        grid_col.vega_lite_chart(spec=photos.probability_grid_spec(per_model), width="stretch")
        grid_col.caption("Outlined: each model's top class.")


def photo_result(shown: photos.ShownPhoto, name: str, index: int, members: list[str]) -> None:
    result = shown.prediction
    if result.no_face_found:
        st.warning(
            f"No face found in {name}. The models below saw the whole image (its centred square): their labels "
            "are guesses about something that may not be a face."
        )
    photo_col, summary_col = st.columns([1, 1])
    if shown.drawn_jpeg is not None:
        photo_col.image(shown.drawn_jpeg, width="stretch")
    latencies = [p.latency_ms for fp in result.faces[:1] for p in fp.predictions.values()]
    photo_col.caption(
        f"{sum(fp.face.detected for fp in result.faces)} face(s) found · detection {result.detect_ms:.0f} ms and "
        f"models {min(latencies):.0f}-{max(latencies):.0f} ms each, measured when this photo was first processed"
    )
    ensembles = [fp.ensemble(members) for fp in result.faces]
    verdicts(result, ensembles, summary_col)
    downloads(result, name, index, members, summary_col)
    probability_grids(result, ensembles)


@st.fragment
def uploaded_photos(chosen: list[str], detector: str, members: list[str]) -> None:
    """Uploads, the snapshot and their results. A fragment: a new photo reruns only this part, not the pickers
    above it or the sidebar (~100 ms of a new photo's rerun, bench/RESULTS.md "The app")."""
    upload_col, camera_col = st.columns([5, 1], vertical_alignment="bottom")
    # Any file is taken (no type filter): Streamlit refuses a filtered type with an icon only, the decoder says why.
    uploads = upload_col.file_uploader("Photos", accept_multiple_files=True)
    camera = camera_col.toggle("Camera", help="Opens the camera below the results for a snapshot")
    results = st.container()
    snapshot = st.camera_input("Snapshot") if camera else None
    inputs = [(f.name, f.getvalue()) for f in uploads or []]
    if snapshot is not None:
        inputs.append(("camera snapshot", snapshot.getvalue()))
    if not inputs:
        results.caption("Upload photos (PNG, JPEG, WebP, BMP, GIF, TIFF) or open the camera to see every model's prediction.")
        page.after_drawing(lambda: photos.predict_classifiers(chosen))  # loaded while the user picks a photo
    for index, (name, data) in enumerate(inputs):
        with results.container(border=True):
            st.subheader(name)
            try:
                shown = photos.predict(data, chosen, detector, name)
            except Exception as exc:  # one bad file must never stop the others
                st.error(f"{name}: could not be processed ({type(exc).__name__}: {exc})")
                continue
            if shown.prediction.error:
                st.error(f"{name}: {shown.prediction.error}")
            else:
                photo_result(shown, name, index, members)


uploaded_photos(chosen, detector, members)
