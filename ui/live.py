"""Predict's Live mode: the browser's camera over WebRTC (streamlit-webrtc, the only module that imports it),
each frame through fer_core.video.LiveRecognizer, and the timeline, rate and latency beside the video."""

from __future__ import annotations

import json
import os
import time

import av
import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from fer_core.video import LiveRecognizer
from fer_core.video.live import RATE_MIN_FRAMES, RATE_WINDOW_S, WINDOW_S, LiveStatus

from . import charts, photos

ICE_SERVERS_ENV = "FER_ICE_SERVERS"
MAX_TIMELINES = 4  # faces with a timeline beside the video (the most recently numbered are left out)
STALL_S = 3.0  # no frame for this long while playing: the stream is said to have stopped
CONNECT_TIMEOUT_S = 15.0  # signalling without a stream this long: the connection is said to have failed
CONNECTING_SINCE = "live_connecting_since"  # session key: when this connection attempt began (for CONNECT_TIMEOUT_S)


def ice_servers() -> tuple[list[dict], str | None]:
    """ICE servers from $FER_ICE_SERVERS (JSON, as RTCPeerConnection takes them), and an error for a bad value.

    None by default: on localhost the browser and the server connect directly, and nothing reaches out to a
    public STUN server (which stalls the connection by seconds on a machine without internet).
    """
    raw = os.environ.get(ICE_SERVERS_ENV, "").strip()
    if not raw:
        return [], None
    try:
        servers = json.loads(raw)
    except json.JSONDecodeError as exc:
        return [], f"${ICE_SERVERS_ENV} is not JSON ({exc}); using no ICE server"
    if not isinstance(servers, list) or not all(isinstance(s, dict) and "urls" in s for s in servers):
        return [], f'${ICE_SERVERS_ENV} must be a JSON list like [{{"urls": ["stun:host:3478"]}}]; using no ICE server'
    return servers, None


REFUSED = (
    "Camera refused, or no connection? Allow the camera in the browser's site settings and press START again, or "
    "take a snapshot under Photos."
)


def render(checkpoint_ids: list[str], detector: str) -> None:
    recognizer = photos.live_recognizer(checkpoint_ids, detector)

    def on_frame(frame: av.VideoFrame) -> av.VideoFrame:  # the stream's thread; older frames are dropped, not queued
        return av.VideoFrame.from_ndarray(recognizer.process(frame.to_ndarray(format="rgb24")), format="rgb24")

    servers, problem = ice_servers()
    if problem:
        st.warning(problem)
    video_col, status_col = st.columns([3, 2])
    with video_col:
        ctx = webrtc_streamer(
            key="live",
            mode=WebRtcMode.SENDRECV,
            rtc_configuration={"iceServers": servers},
            media_stream_constraints={"video": {"width": 640, "height": 480}, "audio": False},
            video_frame_callback=on_frame,
            async_processing=True,
            translations={"device_access_denied": REFUSED, "device_not_available": REFUSED},
        )
        st.caption(
            "Press START and allow the camera. Each frame goes through the chosen models and comes back annotated; "
            "when they fall behind, frames are skipped, never queued. " + REFUSED
        )
    with status_col:
        _status(recognizer, ctx.state.playing, ctx.state.signalling)


def _status(recognizer: LiveRecognizer, playing: bool, signalling: bool) -> None:
    if not signalling or playing:
        st.session_state.pop(CONNECTING_SINCE, None)

    @st.fragment(run_every=1.0 if playing or signalling else None)
    def draw() -> None:
        status = recognizer.status()
        _say_connection(status, playing, signalling)
        if status.frames:
            _stream_figures(status)

    draw()


def _say_connection(status: LiveStatus, playing: bool, signalling: bool) -> None:
    """Connecting, connected, stalled or stopped: what the user should know (and do) about the stream."""
    if not playing:
        if signalling:
            waited = time.monotonic() - st.session_state.setdefault(CONNECTING_SINCE, time.monotonic())
            if waited < CONNECT_TIMEOUT_S:
                st.info("Connecting… Allow the camera if the browser asks.")
            else:
                st.error(
                    f"No connection after {waited:.0f} s. From another machine the browser needs HTTPS and, across "
                    f"networks, an ICE server (${ICE_SERVERS_ENV}, see the README). Take a snapshot under Photos instead."
                )
        elif status.frames:
            st.caption(f"Stopped after {status.frames} frames.")
        else:
            st.caption("Not streaming.")
    elif not status.frames:
        st.info("Connected; waiting for the first frame…")
    elif status.since_last_frame_s > STALL_S:
        st.warning(
            f"No frame for {status.since_last_frame_s:.0f} s: the connection or the camera stopped. "
            "Press STOP and START again, or take a snapshot under Photos."
        )
    if status.error:
        st.error(f"The last frame could not be processed ({status.error}); it was shown unannotated.")


def _stream_figures(status: LiveStatus) -> None:
    """Frame rate, latency and each face's probability timeline over the last seconds."""
    rate, latency = st.columns(2)
    rate.metric(
        "frames / s",
        "–" if status.fps is None else f"{status.fps:.1f}",
        help=f"frames processed per second over the last {RATE_WINDOW_S:.0f} s, or over the last "
        f"{RATE_MIN_FRAMES} frames when fewer came in that time; a stalled stream is flagged above",
    )
    latency.metric(
        "latency p50",
        f"{status.latency_p50_ms:.0f} ms",
        delta=f"p95 {status.latency_p95_ms:.0f} ms",
        delta_color="off",
        delta_arrow="off",
        help="from a frame's arrival on the server to its annotated copy (detection, every model, drawing)",
    )
    faces = sorted({p.face for p in status.timeline})
    for face in faces[:MAX_TIMELINES]:
        st.caption(f"Face {face}, last {WINDOW_S:.0f} s")
        points = [p for p in status.timeline if p.face == face]
        classes = list(dict.fromkeys(p.label for p in points))
        st.altair_chart(charts.probability_timeline(points, classes, WINDOW_S), width="stretch")
    if not faces:
        st.caption(f"No face in the last {WINDOW_S:.0f} s.")
