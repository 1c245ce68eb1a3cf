"""A live stream's recognizer: one frame in, the annotated frame out, plus what the page shows beside the video
(each face's recent class probabilities, frames per second, latency). Called from the streaming thread while
the page reads `status()` from its own; nothing here knows about WebRTC."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..choices import DEFAULT_DETECTOR, VIDEO_DETECTION_SIDE
from ..classifier import FerClassifier
from .recognizer import FrameRecognizer, TimelinePoint, TrackedFace, annotate, timeline

WINDOW_S = 30.0  # how far back the timeline reaches
RATE_WINDOW_S = 5.0  # frames per second and latency are measured over this much recent time...
RATE_MIN_FRAMES = 3  # ...or over the last few frames, when fewer finished in it (a loaded CPU: one every 1-2 s)


@dataclass(frozen=True)
class LiveStatus:
    frames: int  # processed so far
    fps: float | None  # processed frames per second, recently; None before the second frame
    latency_p50_ms: float  # frame in -> annotated frame out, recently
    latency_p95_ms: float
    since_last_frame_s: float  # inf before the first frame: a stalled stream shows here
    error: str | None  # the last frame's failure, if it failed (the frame was sent back unannotated)
    timeline: list[TimelinePoint]  # the last WINDOW_S seconds, times since the stream's first frame


class LiveRecognizer:
    """Thread-safe: `process` from the stream's thread, `status` from the page's."""

    def __init__(
        self,
        classifiers: list[FerClassifier],
        detector: str = DEFAULT_DETECTOR,
        detection_side: int = VIDEO_DETECTION_SIDE,
        clock: Callable[[], float] = time.perf_counter,  # seconds; tests pass a machine of any speed
    ) -> None:
        self.clock = clock
        self.recognizer = FrameRecognizer(classifiers, detector, detection_side)
        self._process_lock = threading.Lock()  # frames one at a time: the tracker needs them in order
        self._state_lock = threading.Lock()
        self._start: float | None = None
        self._frames = 0
        self._history: deque[tuple[float, list[TrackedFace]]] = deque()
        self._done: deque[tuple[float, float]] = deque(maxlen=300)  # (finished at, latency ms)
        self._error: str | None = None

    def process(self, rgb: np.ndarray) -> np.ndarray:
        """The frame annotated with every face's number, label and confidence."""
        received = self.clock()
        error = None
        try:
            with self._process_lock:
                faces = self.recognizer.recognize([rgb])[0]
            out = annotate(rgb, faces)
        except Exception as exc:  # the stream must go on: the frame goes back as it came, the page says why
            faces, out, error = [], rgb, f"{type(exc).__name__}: {exc}"
        finished = self.clock()
        with self._state_lock:
            self._error = error
            if self._start is None:
                self._start = received
            self._frames += 1
            self._history.append((received - self._start, faces))
            while self._history and self._history[0][0] < received - self._start - WINDOW_S:
                self._history.popleft()
            self._done.append((finished, (finished - received) * 1000))
        return out

    def status(self) -> LiveStatus:
        with self._state_lock:
            history, done, frames, error = list(self._history), list(self._done), self._frames, self._error
        now = self.clock()
        recent = [(t, ms) for t, ms in done if t >= now - RATE_WINDOW_S]
        if len(recent) < RATE_MIN_FRAMES:
            recent = done[-RATE_MIN_FRAMES:]
        span = recent[-1][0] - recent[0][0] if len(recent) > 1 else 0.0  # between the first and last frame: a rate
        latencies = np.array([ms for _, ms in recent]) if recent else np.zeros(1)
        return LiveStatus(
            frames=frames,
            fps=(len(recent) - 1) / span if span > 0 else None,
            latency_p50_ms=float(np.percentile(latencies, 50)),
            latency_p95_ms=float(np.percentile(latencies, 95)),
            since_last_frame_s=now - done[-1][0] if done else float("inf"),
            error=error,
            timeline=timeline(history),
        )
