"""Predict's Video file mode: upload, process every Nth frame with a progress bar and cancel, then the annotated
video, each face's timeline, the share of time per expression, and the downloads."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import streamlit as st

from fer_core.predict import ENSEMBLE_ROW
from fer_core.video import VideoError, VideoResult, process_video

from . import charts, checkpoints, photos

RESULT_KEY = "video_result"
CANCELLED_KEY = "video_cancelled"  # set by Cancel's callback; the rerun it causes stops the processing run
MAX_VIDEO_MB = 500  # above the photos' 50 MB (server.maxUploadSize): minutes of 1080p phone video
MAX_FACES_SHOWN = 4  # a crowd: the first faces' charts, the others on request


def render(checkpoint_ids: list[str], detector: str) -> None:
    upload = st.file_uploader(
        "Video",  # any file: the decoder says why one is not a video (a type filter shows an icon only)
        max_upload_size=MAX_VIDEO_MB,
        help=f"Up to {MAX_VIDEO_MB} MB, held in memory while it is processed; the CLI's `video` streams any size",
    )
    every = int(st.number_input("Process every Nth frame", min_value=1, max_value=300, value=5, help="1: every frame"))
    if upload is None:
        st.caption("Upload an mp4, webm, mov, avi or mkv video to follow every face's expression through it.")
        return
    key = (upload.file_id, tuple(checkpoint_ids), detector, every)
    held = st.session_state.get(RESULT_KEY)
    start, cancel = st.columns([1, 5])
    if start.button("Process", type="primary"):
        held = _process(upload.getvalue(), upload.name, checkpoint_ids, detector, every, cancel)
        st.session_state[RESULT_KEY] = (key, *held) if held else None
        held = st.session_state[RESULT_KEY]
    if st.session_state.pop(CANCELLED_KEY, False):
        st.info("Cancelled: the partial results and the annotated video were discarded.")
    if held is None or held[0] != key:
        st.caption("Press Process to run the chosen models over the video.")
        return
    _show(*held[1:])


def _process(
    data: bytes, name: str, checkpoint_ids: list[str], detector: str, every: int, cancel_col
) -> tuple[VideoResult, bytes] | None:
    """Runs in this script: Cancel reruns the page, which stops it; the temporary folder goes with it."""
    cancel_slot = cancel_col.empty()
    cancel_slot.button("Cancel", on_click=st.session_state.update, kwargs={CANCELLED_KEY: True})
    bar = st.progress(0.0, text="Decoding…")

    def progress(frames: int, fraction: float | None) -> None:
        bar.progress(fraction or 0.0, text=f"{frames} frames processed")

    with tempfile.TemporaryDirectory(prefix="fer-video-") as tmp:
        source, out = Path(tmp) / f"upload{Path(name).suffix}", Path(tmp) / "annotated.mp4"
        source.write_bytes(data)
        try:
            result = process_video(source, photos.predict_classifiers(checkpoint_ids), every, out, detector, on_progress=progress)
        except VideoError as exc:
            bar.empty()
            cancel_slot.empty()
            st.error(f"{name}: {exc}")
            return None
        result.source = name
        bar.empty()
        cancel_slot.empty()
        return result, out.read_bytes() if out.exists() else b""


def _show(result: VideoResult, annotated: bytes) -> None:
    info = result.info
    faces = sorted({f.number for frame in result.frames for f in frame.faces})
    video_col, side_col = st.columns([3, 2])
    if annotated:
        video_col.video(annotated, format="video/mp4")
    side_col.markdown(
        f"**{result.source}**  \n{info.width}x{info.height}, {info.duration_s or 0:.1f} s · {len(result.frames)} frames "
        f"processed (every {result.every}) · {len(faces)} face(s)"
    )
    if result.stopped:
        side_col.warning(f"Processing stopped early: {result.stopped}. The results cover the frames before it.")
    stem = Path(result.source).stem
    side_col.download_button(
        "Annotated video (.mp4)", annotated, f"{stem}-annotated.mp4", "video/mp4", disabled=not annotated, on_click="ignore"
    )
    # Built on click, not on every rerun: a long video's CSV and JSON take a while
    side_col.download_button("Per-frame predictions (.csv)", result.to_csv, f"{stem}-frames.csv", "text/csv", on_click="ignore")

    def as_json() -> str:
        return json.dumps(result.to_json())

    side_col.download_button(
        "Per-frame predictions (.json)", as_json, f"{stem}-frames.json", "application/json", on_click="ignore"
    )
    side_col.caption("One row per frame, face and model (and the ensemble): frame index, time, face number, box, probabilities.")
    if not faces:
        st.info("No face was found in the processed frames.")
        return
    points, shares, classes = result.timeline(), result.summary(), result.classes
    if len(faces) > MAX_FACES_SHOWN:
        faces = st.multiselect("Faces to show", faces, default=faces[:MAX_FACES_SHOWN])
    for face in faces:
        st.subheader(f"Face {face}")
        st.caption("Class probabilities over time (the ensemble's when several models share classes)")
        st.altair_chart(charts.probability_timeline([p for p in points if p.face == face], classes), width="stretch")
        st.caption("Share of the time the face was seen, per model")
        face_shares = [replace(s, model=checkpoints.name(s.model)) for s in shares if s.face == face]
        models = [ENSEMBLE_ROW, *map(checkpoints.name, result.models)]
        st.altair_chart(charts.expression_shares(face_shares, classes, models), width="stretch")
