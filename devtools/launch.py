"""Start `streamlit run app.py` on a free local port and wait until it answers, and give headless Chromium a fake
webcam (browser tests, app benchmarks, the README's screenshots)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2

from fer_core.repository import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """The server process and its URL; it is not ready yet (see wait_until_healthy)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_until_healthy(proc: subprocess.Popen, url: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    output = proc.stdout.read() if proc.stdout else b""
    raise RuntimeError("streamlit did not start: " + output.decode(errors="replace")[-2000:])


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextmanager
def running_app(env: dict[str, str] | None = None, timeout: float = 120) -> Iterator[tuple[subprocess.Popen, str]]:
    proc, url = start_app(env)
    try:
        wait_until_healthy(proc, url, timeout)
        yield proc, url
    finally:
        stop_app(proc)


def write_y4m(photo: Path, path: Path, frames: int = 30, width: int = 640) -> Path:
    """A Y4M video (text header + raw YUV 4:2:0 frames) of one photo, `width` pixels wide with the photo's aspect
    ratio (a squashed face is another face to the models), for Chromium's fake webcam."""
    bgr = cv2.imread(str(photo))
    if bgr is None:
        raise ValueError(f"{photo}: not an image OpenCV reads")
    height = round(width * bgr.shape[0] / bgr.shape[1] / 2) * 2  # 4:2:0 wants even sides
    yuv = cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2YUV_I420).tobytes()
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + yuv)
    return path


def fake_camera_args(video: Path) -> list[str]:
    """Chromium flags: headless as root, nothing reached beyond localhost, and `video` (Y4M) as the webcam."""
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
