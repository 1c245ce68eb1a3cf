"""Video files -> every Nth frame's numbered faces and per-model probabilities, an annotated mp4, CSV and JSON.

Frames are decoded by PyAV (FFmpeg) one at a time and handed on in batches of BATCH_FRAMES, so memory does
not grow with the video's length, only the per-frame predictions do (a few hundred bytes per face and model).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..atomic import write_atomically
from ..choices import DEFAULT_DETECTOR, VIDEO_DETECTION_SIDE
from ..classifier import FerClassifier
from ..faces import MAX_PIXELS, Box
from ..predict import ENSEMBLE_ROW, verdict_rows, verdicts_json
from .recognizer import FrameRecognizer, TimelinePoint, TrackedFace, annotate, timeline

MAX_SIDE = 1280  # larger frames (4K...) are scaled down by FFmpeg before anything else: faster, same faces
BATCH_FRAMES = 16  # frames whose faces go through each model together


class VideoError(ValueError):
    """A file that is not a usable video; the message is meant for the user."""


class Cancelled(Exception):
    """Raised inside the writer when `should_stop` says so: the annotated file is then never written."""


@dataclass(frozen=True)
class VideoInfo:
    width: int  # upright (after the rotation metadata), before any scaling
    height: int
    rotation: int  # degrees the decoded frames are turned to be upright
    fps: float | None  # the container's average frame rate
    duration_s: float | None
    frames: int | None  # as the container states it (None: not stated)
    codec: str


@dataclass(frozen=True)
class FrameResult:
    index: int  # the frame's position in the video, from 0
    time_s: float  # its presentation time (variable frame rates stay right)
    faces: list[TrackedFace]  # boxes in the video's upright pixels


@dataclass(frozen=True)
class ExpressionShare:
    face: int
    model: str  # a checkpoint id, or ENSEMBLE_ROW
    label: str
    share: float  # of the time the face was seen


@dataclass
class VideoResult:
    source: str
    info: VideoInfo
    every: int
    models: list[str]
    frames: list[FrameResult] = field(default_factory=list)
    stopped: str | None = None  # why processing ended before the video did (damaged data, cancelled)

    @property
    def classes(self) -> list[str]:
        """Every class some model predicts, in the models' order (FER+ adds contempt after FER2013's seven)."""
        predictions = (p for f in self.frames for face in f.faces for p in face.predictions.values())
        return list(dict.fromkeys(c for p in predictions for c in p.probabilities))

    def timeline(self) -> list[TimelinePoint]:
        return timeline((f.time_s, f.faces) for f in self.frames)

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "video": asdict(self.info),
            "every": self.every,
            "models": self.models,
            "stopped": self.stopped,
            "frames": [
                {
                    "frame": f.index,
                    "time_s": round(f.time_s, 4),
                    "faces": [
                        {
                            "face": face.number,
                            "box": list(face.box),
                            "label": face.label,
                            **verdicts_json(face.predictions, face.ensemble),
                        }
                        for face in f.faces
                    ],
                }
                for f in self.frames
            ],
        }

    def to_csv(self) -> str:
        """One row per frame, face and model (and the ensemble), with a probability column per class."""
        classes = self.classes
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["frame", "time_s", "face", "x", "y", "w", "h", "model", "label", "confidence", *classes])
        for f in self.frames:
            for face in f.faces:
                for model, label, probs, _ in verdict_rows(face.predictions, face.ensemble):
                    cells = [f"{probs[c]:.5f}" if c in probs else "" for c in classes]
                    writer.writerow(
                        [f.index, f"{f.time_s:.4f}", face.number, *face.box, model, label, f"{probs[label]:.5f}", *cells]
                    )
        return out.getvalue()

    def summary(self) -> list[ExpressionShare]:
        """Share of time in each expression per face and model; each processed frame counts until the next one."""
        gaps = np.diff([f.time_s for f in self.frames])
        durations = np.append(gaps, np.median(gaps) if len(gaps) else 1.0)  # the last frame: a typical gap
        seen: dict[tuple[int, str], dict[str, float]] = {}
        for f, duration in zip(self.frames, durations, strict=True):
            for face in f.faces:
                labels = {cid: p.label for cid, p in face.predictions.items()}
                if face.ensemble:
                    labels[ENSEMBLE_ROW] = face.label
                for model, label in labels.items():
                    per_label = seen.setdefault((face.number, model), {})
                    per_label[label] = per_label.get(label, 0.0) + float(duration)
        out = []
        for (number, model), per_label in sorted(seen.items()):
            total = sum(per_label.values())
            out += [
                ExpressionShare(number, model, label, t / total) for label, t in sorted(per_label.items(), key=lambda i: -i[1])
            ]
        return out


def _open(path: str | Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path))
    except FileNotFoundError:
        raise VideoError(f"no such file: {path}") from None
    except av.FFmpegError as exc:  # InvalidDataError and friends: not a container FFmpeg knows, or cut short
        raise VideoError(f"not a video file, or damaged or truncated ({exc.strerror or exc})") from None
    if not container.streams.video:
        audio = bool(container.streams.audio)
        container.close()
        raise VideoError("the file has sound but no video stream" if audio else "the file has no video stream")
    return container


def probe_video(path: str | Path) -> VideoInfo:
    """What the container says about its first video stream; a file that is no video raises VideoError."""
    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream))
        except (StopIteration, av.FFmpegError):
            raise VideoError("the video has no frames that can be decoded") from None
        rotation = int(first.rotation) % 360
        w, h = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        if w * h > MAX_PIXELS:
            raise VideoError(f"frames are {w}x{h} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels")
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        if duration is None and container.duration:
            duration = container.duration / av.time_base
        rate = stream.average_rate
        return VideoInfo(
            w, h, rotation, float(rate) if rate else None, duration, stream.frames or None, stream.codec_context.name
        )


def _scaled_size(info: VideoInfo, max_side: int) -> tuple[int, int]:
    """Upright width and height to process at: at most `max_side`, even (H.264 needs both even)."""
    scale = min(1.0, max_side / max(info.width, info.height))
    return max(2, int(info.width * scale) // 2 * 2), max(2, int(info.height * scale) // 2 * 2)


class FrameReader:
    """(index, time, upright RGB frame scaled to `max_side`) of every `every`-th frame, decoded one at a time.
    Damaged data ends the iteration with av.FFmpegError after the frames before it; `last_time_s`, the time of
    the last frame decoded (processed or not), tells a video cut short from one that ended."""

    def __init__(self, path: str | Path, info: VideoInfo, every: int = 1, max_side: int = MAX_SIDE) -> None:
        self.path, self.info, self.every = path, info, every
        width, height = _scaled_size(info, max_side)
        self.coded = (height, width) if info.rotation in (90, 270) else (width, height)
        self.last_time_s: float | None = None
        self.decoded = 0

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        with _open(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # FFmpeg decodes on every core
            for index, frame in enumerate(container.decode(stream)):
                time_s = float(frame.time) if frame.time is not None else index / (self.info.fps or 30.0)
                self.last_time_s, self.decoded = time_s, index + 1
                if index % self.every:
                    continue
                rgb: np.ndarray = frame.to_ndarray(width=self.coded[0], height=self.coded[1], format="rgb24")
                if frame.rotation:
                    rgb = np.ascontiguousarray(np.rot90(rgb, k=int(frame.rotation) // 90))
                yield index, time_s, rgb

    def cut_short(self) -> str | None:
        """Why the frames ended before the length the container states, if they did (a truncated upload)."""
        info, last = self.info, self.last_time_s
        if last is None or not info.duration_s or not info.fps or last + 2 / info.fps >= info.duration_s:
            return None
        return f"the video ends at {last:.1f} s, before its stated length of {info.duration_s:.1f} s (truncated?)"


class _AnnotatedVideo:
    """H.264 mp4 of the processed frames at their own times (every Nth frame: 1/N of the frame rate)."""

    def __init__(self, path: str, size: tuple[int, int], fps: float) -> None:
        self.container = av.open(path, "w", format="mp4", options={"movflags": "+faststart"})
        self.stream = self.container.add_stream("libx264", rate=max(1, round(fps)), options={"preset": "veryfast", "crf": "23"})
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.time_base = self.stream.time_base = Fraction(1, 1000)
        self.last_pts = -1

    def write(self, rgb: np.ndarray, time_s: float) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.last_pts = max(self.last_pts + 1, int(round(time_s * 1000)))
        frame.time_base = Fraction(1, 1000)
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))
        self.container.close()


def process_video(
    path: str | Path,
    classifiers: list[FerClassifier],
    every: int = 1,
    out: Path | None = None,
    detector: str = DEFAULT_DETECTOR,
    detection_side: int = VIDEO_DETECTION_SIDE,
    on_progress: Callable[[int, float | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> VideoResult:
    """Every `every`-th frame's faces through every model. `out`: the annotated mp4, renamed into place only once
    complete (a cancelled run writes none). `on_progress(frames done, fraction of the duration or None)`."""
    if every < 1:
        raise ValueError(f"--every must be at least 1, not {every}")
    info = probe_video(path)
    result = VideoResult(str(path), info, every, [c.id for c in classifiers])
    recognizer = FrameRecognizer(classifiers, detector, detection_side)
    size = _scaled_size(info, MAX_SIDE)
    to_original = (info.width / size[0], info.height / size[1])

    def finish(batch: list[tuple[int, float, np.ndarray]], video: _AnnotatedVideo | None) -> None:
        _finish_batch(batch, recognizer, result, video, to_original)
        if on_progress:
            t = result.frames[-1].time_s
            on_progress(len(result.frames), min(1.0, t / info.duration_s) if info.duration_s else None)
        if should_stop and should_stop():
            raise Cancelled

    def run(video: _AnnotatedVideo | None) -> None:
        reader, batch = FrameReader(path, info, every), []
        try:
            for item in reader:
                batch.append(item)
                if len(batch) == BATCH_FRAMES:
                    finish(batch, video)
                    batch = []
        except av.FFmpegError as exc:
            result.stopped = f"damaged data after {reader.decoded} frames: {exc}"
        if batch:
            finish(batch, video)
        result.stopped = result.stopped or reader.cut_short()

    try:
        if out is None:
            run(None)
        else:

            def write(tmp: str) -> None:
                video = _AnnotatedVideo(tmp, size, (info.fps or 30.0) / every)
                run(video)
                video.close()

            write_atomically(out, write)
    except Cancelled:
        result.stopped = "cancelled"
    if not result.frames and result.stopped != "cancelled":
        raise VideoError("the video has no frames that can be decoded")
    return result


def _finish_batch(
    batch: list[tuple[int, float, np.ndarray]],
    recognizer: FrameRecognizer,
    result: VideoResult,
    video: _AnnotatedVideo | None,
    to_original: tuple[float, float],
) -> None:
    faces_per_frame = recognizer.recognize([rgb for _, _, rgb in batch])
    for (index, time_s, rgb), faces in zip(batch, faces_per_frame, strict=True):
        if video is not None:
            video.write(annotate(rgb, faces), time_s)
        result.frames.append(FrameResult(index, time_s, [_rescaled(face, to_original) for face in faces]))


def _rescaled(face: TrackedFace, factor: tuple[float, float]) -> TrackedFace:
    fx, fy = factor
    x, y, w, h = face.box
    box: Box = (round(x * fx), round(y * fy), round(w * fx), round(h * fy))
    return replace(face, box=box)
