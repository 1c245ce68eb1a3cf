"""Live recognition and video files (issue #18): tracking, the per-frame outputs, the CLI and broken videos."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import av
import numpy as np
import pytest

from fer_core.classifier import load_checkpoint
from fer_core.faces import detect_faces
from fer_core.predict import ENSEMBLE_ROW
from fer_core.store import list_checkpoints
from fer_core.video import (
    VIDEO_DETECTION_SIDE,
    FaceTracker,
    LiveRecognizer,
    VideoError,
    probe_video,
    process_video,
)
from fer_core.video.files import FrameReader

from .test_cli import cli
from .video_fixtures import face_frames, rotate_in_metadata, write_audio_only, write_video


@pytest.fixture(scope="module")
def classifiers(tiny_checkpoints):
    return [load_checkpoint(c.id, tiny_checkpoints) for c in list_checkpoints(tiny_checkpoints)]


@pytest.fixture(scope="module")
def two_face_video(tmp_path_factory, grace_hopper) -> Path:
    return write_video(face_frames(grace_hopper, 12, (480, 240), faces=2), tmp_path_factory.mktemp("video") / "two.mp4")


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_tracker_keeps_numbers_while_faces_move_and_never_reuses_one():
    tracker = FaceTracker(max_missed=2)
    assert tracker.update([(0, 0, 50, 50), (200, 0, 50, 50)]) == [1, 2]
    assert tracker.update([(212, 4, 50, 50), (10, 3, 52, 50)]) == [2, 1]  # order of detection does not matter
    assert tracker.update([(20, 6, 50, 50)]) == [1]  # face 2 leaves
    for _ in range(3):
        tracker.update([(20, 6, 50, 50)])
    assert tracker.update([(20, 6, 50, 50), (220, 0, 50, 50)]) == [1, 3]  # gone too long: a new number


def test_live_and_video_default_to_the_fastest_of_the_most_robust():
    from fer_core.data.classes import FER2013_CLASSES
    from fer_core.leaderboard import moving_defaults
    from fer_core.store import default_root

    metas = [c.meta for c in list_checkpoints(default_root()) if c.meta is not None]  # the shipped ten
    latency = {m.id: m.efficiency.latency_ms_b1 for m in metas if m.efficiency and m.classes == FER2013_CLASSES}
    by_speed = sorted(latency, key=latency.__getitem__)
    # the fastest made the least robust: the pool of the five most robust leaves it out
    mce = {cid: 1.0 - 0.05 * rank for rank, cid in enumerate(by_speed)}
    chosen = moving_defaults(metas, mce)
    pool = sorted(mce, key=mce.__getitem__)[:5]
    assert chosen.ids == sorted(pool, key=latency.__getitem__)[:3] and by_speed[0] not in chosen.ids
    assert "most robust" in chosen.reason
    ferplus = next(m.id for m in metas if m.classes != FER2013_CLASSES)
    assert ferplus not in moving_defaults(metas, mce | {ferplus: 0.1}).ids  # another class list: no ensemble
    few = moving_defaults(metas, dict(list(mce.items())[:2]))
    assert few.ids == by_speed[:3] and "measured for 2 of" in few.reason  # too few measured: the fastest, and why


def test_video_faces_are_numbered_across_frames_and_batched_through_each_model(classifiers, two_face_video, monkeypatch):
    calls: dict[str, list[int]] = {c.id: [] for c in classifiers}
    for clf in classifiers:  # every model sees a batch's faces in one call, not a call per frame or face
        predict = clf.predict_proba
        monkeypatch.setattr(
            clf,
            "predict_proba",
            lambda faces, *a, _p=predict, _id=clf.id, **k: (calls[_id].append(len(faces)), _p(faces, *a, **k))[1],
        )
    result = process_video(two_face_video, classifiers, every=2)
    assert all(sizes == [12] for sizes in calls.values()), calls  # 6 frames x 2 faces, one batch
    assert [f.index for f in result.frames] == list(range(0, 12, 2))
    assert [round(f.time_s, 2) for f in result.frames] == [round(i / 10, 2) for i in range(0, 12, 2)]
    assert all(sorted(face.number for face in f.faces) == [1, 2] for f in result.frames)
    left = [next(face for face in f.faces if face.number == result.frames[0].faces[0].number) for f in result.frames]
    assert all(b.box[0] >= a.box[0] for a, b in zip(left, left[1:], strict=False))  # the same face, moving right
    face = result.frames[0].faces[0]
    assert set(face.predictions) == {c.id for c in classifiers} and face.ensemble is not None
    assert sum(face.ensemble.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    shares = {s.label: s.share for s in result.summary() if s.face == face.number and s.model == ENSEMBLE_ROW}
    tops = [
        f2.ensemble.label for f in result.frames for f2 in f.faces if f2.number == face.number
    ]  # the share of time is the share of frames with that top class
    assert shares == {label: pytest.approx(tops.count(label) / len(tops)) for label in set(tops)}
    assert result.stopped is None


def test_the_share_of_time_weighs_each_frame_until_the_next_one():
    """Frames at 0, 1 and 3 s labelled a, b, a: a holds from 0 to 1 and from 3 on (the last frame: the typical gap,
    1.5 s), b from 1 to 3."""
    from fer_core.predict import ModelPrediction
    from fer_core.video.files import FrameResult, VideoInfo, VideoResult
    from fer_core.video.recognizer import TrackedFace

    def face(label: str) -> TrackedFace:
        probabilities = {"a": 0.9, "b": 0.1} if label == "a" else {"a": 0.1, "b": 0.9}
        return TrackedFace(1, (0, 0, 10, 10), {"m": ModelPrediction(label, probabilities, 1.0)})

    info = VideoInfo(64, 64, 0, 1.0, 4.5, 5, "h264")
    frames = [FrameResult(i, t, [face(label)]) for i, (t, label) in enumerate([(0.0, "a"), (1.0, "b"), (3.0, "a")])]
    shares = {s.label: s.share for s in VideoResult("v.mp4", info, 1, ["m"], frames).summary()}
    assert shares == pytest.approx({"a": 2.5 / 4.5, "b": 2.0 / 4.5})


def test_cli_writes_csv_json_and_a_decodable_annotated_mp4(tiny_checkpoints, two_face_video, tmp_path):
    ids = [c.id for c in list_checkpoints(tiny_checkpoints)]
    out, table = tmp_path / "annotated.mp4", tmp_path / "frames.csv"
    proc = cli(
        "video", two_face_video, "--checkpoints", tiny_checkpoints, "--models", ",".join(ids),
        "--every", "3", "--out", out, "--csv", table, "--json",
    )  # fmt: skip
    doc = json.loads(proc.stdout)
    assert [f["frame"] for f in doc["frames"]] == [0, 3, 6, 9]
    assert doc["models"] == ids and doc["video"]["width"] == 480
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert len(rows) == 4 * 2 * (len(ids) + 1)  # frames x faces x (models + their ensemble)
    assert {r["frame"] for r in rows} == {"0", "3", "6", "9"} and {r["face"] for r in rows} == {"1", "2"}
    assert {r["model"] for r in rows} == {*ids, ENSEMBLE_ROW}
    first = rows[0]
    assert float(first["confidence"]) == pytest.approx(float(first[first["label"]]), abs=1e-5)
    assert decoded_frames(out) == 4
    assert probe_video(out).width == 480


def test_rotated_phone_video_comes_out_upright(classifiers, grace_hopper, tmp_path):
    upright = face_frames(grace_hopper, 4, size=(240, 320))  # portrait
    stored = [np.ascontiguousarray(np.rot90(f, k=1)) for f in upright]  # what the phone's sensor wrote
    path = rotate_in_metadata(write_video(stored, tmp_path / "phone.mp4"))
    info = probe_video(path)
    assert (info.width, info.height) == (240, 320) and info.rotation == 270
    frames = [rgb for _, _, rgb in FrameReader(path, info)]
    assert frames[0].shape == (320, 240, 3)
    assert np.abs(frames[0].astype(int) - upright[0]).mean() < 8  # the same picture, only lossy-coded
    assert all(f.faces for f in process_video(path, classifiers).frames)  # the upright face is found


def test_variable_frame_rate_keeps_each_frames_own_time(classifiers, grace_hopper, tmp_path):
    times = [0, 100, 150, 400, 410, 900]
    path = write_video(face_frames(grace_hopper, 6), tmp_path / "vfr.mp4", times_ms=times)
    assert [round(f.time_s * 1000) for f in process_video(path, classifiers).frames] == times


def test_4k_frames_are_scaled_down_and_boxes_stay_in_the_videos_pixels(classifiers, grace_hopper, tmp_path):
    frames = face_frames(grace_hopper, 2, size=(3840, 2160))
    path, out = write_video(frames, tmp_path / "uhd.mp4"), tmp_path / "annotated.mp4"
    result = process_video(path, classifiers, out=out)
    found = np.array(result.frames[0].faces[0].box)
    expected = np.array(detect_faces(frames[0], side=VIDEO_DETECTION_SIDE)[0].box)  # on the 4K frame itself
    assert expected[2] > 300 and np.abs(found - expected).max() < 0.1 * expected[2]  # codec, resampling
    assert (probe_video(out).width, probe_video(out).height) == (1280, 720)


def test_a_truncated_video_says_where_it_stopped(classifiers, grace_hopper, tmp_path):
    data = write_video(face_frames(grace_hopper, 60), tmp_path / "full.mkv").read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.85)])
    result = process_video(cut, classifiers, every=5)
    assert 0 < len(result.frames) < 12
    assert result.stopped and "truncated" in result.stopped
    cut.write_bytes(data[:2000])  # inside the first frame
    with pytest.raises(VideoError, match="no frames|damaged or truncated"):
        process_video(cut, classifiers)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("just text") or p, "not a video file"),
        (lambda p: p.write_bytes(b"") or p, "not a video file"),
        (write_audio_only, "sound but no video"),
    ],
    ids=["text", "empty", "audio-only"],
)
def test_files_that_are_no_video_get_a_message(classifiers, tmp_path, make, message):
    path = tmp_path / "upload.m4a"
    make(path)
    with pytest.raises(VideoError, match=message):
        process_video(path, classifiers, out=tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == [path]  # nothing half-written


def test_cli_bad_video_is_one_line(tiny_checkpoints, tmp_path):
    (tmp_path / "x.mp4").write_text("not a video")
    proc = cli("video", tmp_path / "x.mp4", "--checkpoints", tiny_checkpoints, check=False)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "not a video file" in proc.stderr


def test_cancel_stops_between_batches_and_leaves_no_output(classifiers, grace_hopper, tmp_path):
    from fer_core.video.files import BATCH_FRAMES

    (tmp_path / "clip").mkdir()
    clip = write_video(face_frames(grace_hopper, 3 * BATCH_FRAMES, (320, 240)), tmp_path / "clip" / "long.mp4")
    out = tmp_path / "annotated.mp4"
    result = process_video(clip, classifiers, out=out, should_stop=lambda: True)  # asked from the first batch on
    assert result.stopped == "cancelled" and len(result.frames) == BATCH_FRAMES  # the first of three batches only
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["clip"]  # no annotated video, no temp file


def test_every_must_be_positive(classifiers, two_face_video):
    with pytest.raises(ValueError, match="at least 1"):
        process_video(two_face_video, classifiers, every=0)


def test_live_recognizer_annotates_and_reports_rate_latency_and_timeline(classifiers, grace_hopper):
    live = LiveRecognizer(classifiers)
    frames = face_frames(grace_hopper, 8, (320, 240))
    annotated = [live.process(f) for f in frames]
    assert annotated[0].shape == frames[0].shape and np.abs(annotated[0].astype(int) - frames[0]).sum() > 0
    status = live.status()
    assert status.frames == 8 and status.fps > 0 and 0 < status.latency_p50_ms <= status.latency_p95_ms
    assert {p.face for p in status.timeline} == {1}
    assert len(status.timeline) == 8 * len(classifiers[0].classes)
    assert status.since_last_frame_s < 5


@pytest.mark.parametrize("seconds_per_frame", [0.4, 1.4, 6.0])
def test_live_frames_per_second_on_a_slow_machine_is_the_real_rate_never_zero(classifiers, grace_hopper, seconds_per_frame):
    """18 frames in 25 s on a loaded CPU read 0.0 when the rate was counted in a 2 s window."""
    ticks = iter(np.arange(0, 1000, seconds_per_frame / 2))  # each frame arrives, then finishes half a period later
    live = LiveRecognizer(classifiers, clock=lambda: float(next(ticks)))
    frame = face_frames(grace_hopper, 1, (320, 240))[0]
    assert live.status().fps is None  # before the second frame there is no rate
    for _ in range(6):
        live.process(frame)
    assert live.status().fps == pytest.approx(1 / seconds_per_frame)


def test_ice_servers_come_from_the_environment(monkeypatch):
    from ui.live import ice_servers

    monkeypatch.delenv("FER_ICE_SERVERS", raising=False)
    assert ice_servers() == ([], None)
    monkeypatch.setenv("FER_ICE_SERVERS", '[{"urls": ["stun:stun.example.org:3478"]}]')
    assert ice_servers() == ([{"urls": ["stun:stun.example.org:3478"]}], None)
    monkeypatch.setenv("FER_ICE_SERVERS", "stun:oops")
    servers, problem = ice_servers()
    assert servers == [] and "not JSON" in (problem or "")


def test_a_failing_frame_goes_back_unannotated_and_the_stream_goes_on(classifiers, grace_hopper, monkeypatch):
    live = LiveRecognizer(classifiers)
    frame = face_frames(grace_hopper, 1)[0]

    def broken(*_args, **_kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(classifiers[0], "predict_proba", broken)
    assert live.process(frame) is frame
    assert "out of memory" in (live.status().error or "")
    monkeypatch.undo()
    assert not np.array_equal(live.process(frame), frame)
    assert live.status().error is None and live.status().frames == 2
