"""Expression recognition on moving pictures: live streams (live.py) and video files (files.py), sharing one
frame step (recognizer.py: detect, crop, predict in batches, number the faces with tracking.py)."""

from ..choices import VIDEO_DETECTION_SIDE
from .files import (
    ExpressionShare,
    FrameResult,
    VideoError,
    VideoInfo,
    VideoResult,
    probe_video,
    process_video,
)
from .live import LiveRecognizer, LiveStatus
from .recognizer import FrameRecognizer, TimelinePoint, TrackedFace, annotate
from .tracking import FaceTracker

__all__ = [
    "VIDEO_DETECTION_SIDE",
    "ExpressionShare",
    "FaceTracker",
    "FrameRecognizer",
    "FrameResult",
    "LiveRecognizer",
    "LiveStatus",
    "TimelinePoint",
    "TrackedFace",
    "VideoError",
    "VideoInfo",
    "VideoResult",
    "annotate",
    "process_video",
    "probe_video",
]
