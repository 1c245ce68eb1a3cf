"""Small videos written here with PyAV from a real face photo, and the broken ones a video upload can be."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def face_frames(photo: Path, n: int, size: tuple[int, int] = (320, 240), faces: int = 1) -> list[np.ndarray]:
    """`n` RGB frames with `faces` copies of the photo's face sliding right by a few pixels a frame."""
    w, h = size
    face = cv2.resize(cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB), (int(h * 0.6 * 600 / 512), int(h * 0.6)))
    fh, fw = face.shape[:2]
    frames = []
    for i in range(n):
        canvas = np.full((h, w, 3), (96, 110, 124), np.uint8)
        for k in range(faces):
            x = min(w - fw, k * (w // faces) + 2 * i)
            canvas[h // 5 : h // 5 + fh, x : x + fw] = face
        frames.append(canvas)
    return frames


def write_video(
    frames: Sequence[np.ndarray], path: Path, fps: int = 10, codec: str = "libx264", times_ms: Sequence[int] | None = None
) -> Path:
    """An H.264 (or `codec`) video in the container its suffix names; `times_ms`: each frame's own time (VFR)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if times_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[i], Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def rotate_in_metadata(path: Path) -> Path:
    """Mark an mp4 as a phone does when held upright: stored landscape, shown turned 90 degrees clockwise (the
    track header's display matrix)."""
    data = bytearray(path.read_bytes())
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    at = data.rfind(identity)  # the last one is the video track's (the first is the movie header's)
    data[at : at + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        samples = np.zeros((1, 16000), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_without_frames(path: Path) -> Path:
    """A container with a video stream that holds no frame."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        out.mux(stream.encode(None))
    return path
