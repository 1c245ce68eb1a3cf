"""Frames -> numbered faces with every chosen model's probabilities: the step that live streams and video files
share. The faces of all frames handed over together go through each model as one batch."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..choices import DEFAULT_DETECTOR, VIDEO_DETECTION_SIDE
from ..classifier import FerClassifier
from ..drawing import DETECTED, draw_boxes
from ..faces import Box, FaceDetector, detect_faces
from ..predict import Ensemble, ModelPrediction, predict_faces
from .tracking import FaceTracker


@dataclass(frozen=True)
class TrackedFace:
    number: int  # the same person keeps it across frames (FaceTracker)
    box: Box  # x, y, w, h in the frame's pixels
    predictions: dict[str, ModelPrediction]  # checkpoint id -> prediction
    ensemble: Ensemble | None = None  # None with a single model (or no two sharing a class list)

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def probabilities(self) -> dict[str, float]:
        """The ensemble's probabilities, or the first model's when there is no ensemble."""
        return self.ensemble.probabilities if self.ensemble is not None else next(iter(self.predictions.values())).probabilities


@dataclass(frozen=True)
class TimelinePoint:
    time_s: float
    face: int
    label: str
    probability: float


def timeline(frames: Iterable[tuple[float, Sequence[TrackedFace]]]) -> list[TimelinePoint]:
    """Each face's class probabilities (the ensemble's when there is one) at each (time, faces) given."""
    return [
        TimelinePoint(t, face.number, label, p)
        for t, faces in frames
        for face in faces
        for label, p in face.probabilities.items()
    ]


@dataclass
class FrameRecognizer:
    """Detects, crops, predicts and numbers the faces of frames; one per stream (it keeps the face tracks)."""

    classifiers: list[FerClassifier]
    detector: str | FaceDetector = DEFAULT_DETECTOR
    detection_side: int = VIDEO_DETECTION_SIDE
    tracker: FaceTracker = field(default_factory=FaceTracker)

    def __post_init__(self) -> None:
        if not self.classifiers:
            raise ValueError("choose at least one model")

    def recognize(self, frames: Sequence[np.ndarray]) -> list[list[TrackedFace]]:
        """The faces of each RGB frame, in frame order; frames must be consecutive in the stream."""
        found = [detect_faces(frame, self.detector, side=self.detection_side) for frame in frames]
        predictions = iter(predict_faces(self.classifiers, [face for faces in found for face in faces]))
        out = []
        for faces in found:
            numbers = self.tracker.update([face.box for face in faces])
            frame_faces = []
            for number, face in zip(numbers, faces, strict=True):
                fp = next(predictions)
                frame_faces.append(TrackedFace(number, face.box, fp.predictions, fp.ensemble()))
            out.append(frame_faces)
        return out


def annotate(rgb: np.ndarray, faces: Sequence[TrackedFace]) -> np.ndarray:
    """The frame with each face's number, label and confidence (the ensemble's when there is one)."""
    titles = [f"{f.number}: {f.label} {f.probabilities[f.label]:.0%}" for f in faces]
    return draw_boxes(rgb, [f.box for f in faces], titles, [DETECTED] * len(faces))
