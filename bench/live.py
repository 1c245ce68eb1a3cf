"""Live and video pipelines on this machine (issue #18), in one run:

    python -m bench.live [--frames 150]

1. Live, per frame at 640x480, what Predict's Live mode runs for each WebRTC frame: the decoded frame (YUV 4:2:0)
   to RGB, fer_core.video.LiveRecognizer.process (detect, crop, every model, number, annotate) and back to a
   frame to send. Frames per second and latency p50/p95 with the fastest shipped model, the three fastest
   (Live's default) and every shipped checkpoint. Targets on 2 cores: >= 25 fps with the fastest, >= 15 with three.
2. Video files: fer_core.video.process_video (PyAV decode, faces of 16 frames batched through each model)
   against two naive loops over the same mp4 with the same models, each reading frames with OpenCV's
   VideoCapture: (a) detect with the same detector at the same size, then each model on the frame's faces;
   (b) fer_core's photo API on each frame (predict_photo: detection at the photos' 640 px, then each model).
   Target: >= 3x the naive loop's frames per second.

The frames are a real photo (matplotlib's grace_hopper.jpg) moving across a 640x480 canvas; nothing downloaded.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import matplotlib.cbook
import numpy as np

from fer_core.choices import DEFAULT_DETECTOR, VIDEO_DETECTION_SIDE
from fer_core.classifier import FerClassifier, load_checkpoint
from fer_core.faces import detect_faces, load_photo
from fer_core.failures.robustness import measured_mce
from fer_core.leaderboard import moving_defaults
from fer_core.predict import predict_photo
from fer_core.store import list_checkpoints
from fer_core.video import LiveRecognizer, process_video

from .harness import machine, percentiles

SIZE = (640, 480)


def moving_face_frames(n: int) -> list[np.ndarray]:
    """`n` RGB 640x480 frames of one real face sliding left and right."""
    face = cv2.resize(load_photo(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), (260, 222))
    frames = []
    for i in range(n):
        canvas = np.full((SIZE[1], SIZE[0], 3), (96, 110, 124), np.uint8)
        x = int(190 + 150 * np.sin(i / 15))
        canvas[120:342, x : x + 260] = face
        frames.append(canvas)
    return frames


def write_mp4(frames: list[np.ndarray], path: Path, fps: int = 30) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for rgb in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def live(classifiers: list[FerClassifier], frames: list[np.ndarray]) -> tuple[float, float, float]:
    """Frames per second and latency p50/p95 (ms) of Live's per-frame work, frame after frame."""
    incoming = [av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p") for f in frames]
    recognizer = LiveRecognizer(classifiers)
    for frame in incoming[:5]:
        recognizer.process(frame.to_ndarray(format="rgb24"))
    latencies = []
    start = time.perf_counter()
    for frame in incoming:
        t = time.perf_counter()
        av.VideoFrame.from_ndarray(recognizer.process(frame.to_ndarray(format="rgb24")), format="rgb24")
        latencies.append((time.perf_counter() - t) * 1000)
    fps = len(incoming) / (time.perf_counter() - start)
    return fps, *percentiles(latencies)


def per_frame_loop(path: Path, handle: Callable[[np.ndarray], object]) -> float:
    """Frames per second of reading the mp4 with OpenCV's VideoCapture and calling `handle` on each RGB frame."""
    capture = cv2.VideoCapture(str(path))
    frames, start = 0, time.perf_counter()
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        handle(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        frames += 1
    capture.release()
    return frames / (time.perf_counter() - start)


def naive_video(classifiers: list[FerClassifier], path: Path) -> float:
    """(a) The loop a notebook would write: detect, then each model on the frame's faces."""

    def handle(rgb: np.ndarray) -> None:
        faces = detect_faces(rgb, DEFAULT_DETECTOR, side=VIDEO_DETECTION_SIDE)
        for clf in classifiers:
            if faces:
                clf.predict_proba(np.stack([f.face for f in faces]))

    return per_frame_loop(path, handle)


def naive_photo_api(classifiers: list[FerClassifier], path: Path) -> float:
    """(b) predict_photo on every frame, as a user of the photo API would loop."""
    return per_frame_loop(path, lambda rgb: predict_photo(classifiers, rgb))


def batched_video(classifiers: list[FerClassifier], path: Path) -> float:
    start = time.perf_counter()
    result = process_video(path, classifiers)
    return len(result.frames) / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=150, help="frames per measurement (video: the mp4's length)")
    args = p.parse_args()
    print(machine(detection=f"MTCNN at {VIDEO_DETECTION_SIDE} px") + "\n")
    good = [c for c in list_checkpoints() if c.ok and c.meta is not None]
    store = [(c.meta, c.path) for c in good if c.meta is not None]
    defaults = moving_defaults([meta for meta, _ in store], measured_mce(store))
    sets = {
        "fastest model": moving_defaults([meta for meta, _ in store], {}, n=1).ids,  # no mCE given: the fastest
        f"Live's default: {defaults.reason}": defaults.ids,
        f"all {len(good)} shipped": [c.id for c in good],
    }
    loaded = {cid: load_checkpoint(cid) for cid in {cid for ids in sets.values() for cid in ids}}
    frames = moving_face_frames(args.frames)
    print(
        "| models | live fps | live latency p50 / p95 ms | video fps: naive (a) same detection / (b) photo API / fer_core "
        "| video speed-up over (a) / (b) |"
    )
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        mp4 = write_mp4(frames, Path(tmp) / "moving-face.mp4")
        for name, ids in sets.items():
            classifiers = [loaded[cid] for cid in ids]
            fps, p50, p95 = live(classifiers, frames)
            naive, photo, ours = naive_video(classifiers, mp4), naive_photo_api(classifiers, mp4), batched_video(classifiers, mp4)
            print(
                f"| {name} | {fps:.1f} | {p50:.0f} / {p95:.0f} | {naive:.1f} / {photo:.1f} / {ours:.1f} "
                f"| {ours / naive:.2f}x / {ours / photo:.2f}x |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
