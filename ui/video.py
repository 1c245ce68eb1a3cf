"""Predict's Video file mode: upload, process every Nth frame with a progress bar and cancel, then the annotated
video, each face's timeline, the share of time per expression, and the downloads."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import streamlit as st

from fer_core.video import VIDEO_TYPES, VideoError, VideoResult, process_video

from . import charts, state

RESULT_KEY = "video_result"


def render(checkpoint_ids: list[str], detector: str) -> None:
    upload = st.file_uploader(
        "Video",
        type=list(VIDEO_TYPES),
        help="Up to Streamlit's upload limit (200 MB); `python -m fer_core video` takes any length",
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
    if held is None or held[0] != key:
        st.caption("Press Process to run the chosen models over the video.")
        return
    _show(*held[1:])


def _process(
    data: bytes, name: str, checkpoint_ids: list[str], detector: str, every: int, cancel_col
) -> tuple[VideoResult, bytes] | None:
    """Runs in this script: Cancel reruns the page, which stops it; the temporary folder goes with it."""
    cancel_col.button("Cancel")
    bar = st.progress(0.0, text="Decoding…")

    def progress(frames: int, fraction: float | None) -> None:
        bar.progress(fraction or 0.0, text=f"{frames} frames processed")

    with tempfile.TemporaryDirectory(prefix="fer-video-") as tmp:
        source, out = Path(tmp) / f"upload{Path(name).suffix}", Path(tmp) / "annotated.mp4"
        source.write_bytes(data)
        try:
            result = process_video(source, state.predict_classifiers(checkpoint_ids), every, out, detector, on_progress=progress)
        except VideoError as exc:
            bar.empty()
            st.error(f"{name}: {exc}")
            return None
        result.source = name
        bar.empty()
        return result, out.read_bytes() if out.exists() else b""


def _show(result: VideoResult, annotated: bytes) -> None:
    info = result.info
    faces = sorted({f.number for frame in result.frames for f in frame.faces})
    st.markdown(
        f"**{result.source}**: {info.width}x{info.height}, {info.duration_s or 0:.1f} s · {len(result.frames)} frames "
        f"processed (every {result.every}) · {len(faces)} face(s)"
    )
    if result.stopped:
        st.warning(f"Processing stopped early: {result.stopped}. The results cover the frames before it.")
    if annotated:
        st.video(annotated, format="video/mp4")
    stem = Path(result.source).stem
    d1, d2, d3 = st.columns(3)
    d1.download_button("Annotated video (.mp4)", annotated, f"{stem}-annotated.mp4", "video/mp4", disabled=not annotated)
    d2.download_button("Per-frame predictions (.csv)", result.to_csv(), f"{stem}-frames.csv", "text/csv")
    d3.download_button("Per-frame predictions (.json)", json.dumps(result.to_json()), f"{stem}-frames.json", "application/json")
    if not faces:
        st.info("No face was found in the processed frames.")
        return
    st.subheader("Each face over time")
    st.altair_chart(charts.probability_timeline(result.timeline()), width="stretch")
    st.subheader("Share of time in each expression")
    st.altair_chart(charts.expression_shares(result.summary()), width="stretch")
