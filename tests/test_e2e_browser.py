"""The app in a real browser: Debian's Chromium driven by Playwright against `streamlit run` on 127.0.0.1.

Chromium's fake-media flags serve a Y4M file (written here from a real face photo) as the webcam, so the
camera snapshot path is exercised too. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest

from fer_core.store import list_checkpoints
from ui.launch import running_app

from .conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)")


def write_y4m(photo: Path, path: Path, frames: int = 30) -> Path:
    """A Y4M video (text header + raw YUV 4:2:0 frames) of one photo, for Chromium's fake webcam."""
    bgr = cv2.resize(cv2.imread(str(photo)), (640, 480))
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes()
    with path.open("wb") as f:
        f.write(b"YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg\n")
        for _ in range(frames):
            f.write(b"FRAME\n" + yuv)
    return path


@pytest.fixture()
def server(tiny_checkpoints, kaggle_zip, tmp_path):
    env = {"FER_CHECKPOINTS": str(tiny_checkpoints), "FER_DATA": str(kaggle_zip), "FER_RUNS": str(tmp_path / "runs")}
    with running_app(env) as (_, url):
        yield url


def test_browser_predict_camera_explain_evaluate(server, tiny_checkpoints, grace_hopper, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    video = write_y4m(grace_hopper, tmp_path / "face.y4m")
    ids = [c.id for c in list_checkpoints(tiny_checkpoints)]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
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
            ],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 800}, permissions=["camera"])
        page = context.new_page()
        page.set_default_timeout(120_000)
        expect.set_options(timeout=120_000)
        page.goto(server)
        expect(page.get_by_text("Leaderboard (PrivateTest)")).to_be_visible()
        expect(page.get_by_text("Blank images")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)

        page.get_by_role("link", name="Predict").click()
        page.locator("input[type=file]").first.set_input_files(str(grace_hopper))
        expect(page.get_by_text("1 face(s)").first).to_be_visible()
        for cid in ids:
            expect(page.get_by_text(cid).first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "predict.png"), full_page=True)

        page.get_by_role("button", name="Take Photo").click()
        expect(page.get_by_text("camera snapshot")).to_be_visible()
        expect(page.get_by_text("face(s)")).to_have_count(2)
        page.screenshot(path=str(ARTIFACTS / "predict_camera.png"), full_page=True)

        page.get_by_role("link", name="Explain").click()
        expect(page.get_by_text("Integrated Gradients", exact=True)).to_be_visible()  # not the spinner "... for <id>"
        expect(page.get_by_text("Feature maps", exact=True)).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "explain.png"), full_page=True)

        page.get_by_role("link", name="Evaluate").click()
        expect(page.get_by_text("Classification report")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "evaluate.png"), full_page=True)
        assert page.locator("text=Traceback").count() == 0
        browser.close()


def test_refresh_reattaches_to_the_running_job_and_cancel_works(tiny_checkpoints, kaggle_zip, tmp_path):
    """A job started elsewhere (another tab, the CLI) shows in a fresh page load, survives a reload, and cancels."""
    from playwright.sync_api import expect, sync_playwright

    from fer_core.training import make_config
    from fer_core.training.jobs import read_job, start_job

    runs = tmp_path / "runs"
    env = {"FER_CHECKPOINTS": str(tiny_checkpoints), "FER_DATA": str(kaggle_zip), "FER_RUNS": str(runs)}
    cfg = make_config("keras_cnn", "quick", data=str(kaggle_zip), epochs=2000, batch_size=4, device="cpu")
    with running_app(env) as (_, url), sync_playwright() as p:
        job_id = start_job(cfg, root=runs, checkpoints=tmp_path / "ck")
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.set_default_timeout(120_000)
        expect.set_options(timeout=120_000)
        page.goto(url)
        expect(page.get_by_text("keras_cnn training: epoch")).to_be_visible()
        page.reload()
        expect(page.get_by_text("keras_cnn training: epoch")).to_be_visible()
        page.get_by_role("button", name="Cancel").click()
        expect(page.get_by_text("keras_cnn was cancelled; nothing was saved.")).to_be_visible()
        browser.close()
    assert read_job(runs / job_id).state == "cancelled" and not (tmp_path / "ck").exists()
