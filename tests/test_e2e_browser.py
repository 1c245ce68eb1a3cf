"""The app in a real browser: Debian's Chromium driven by Playwright against `streamlit run` on 127.0.0.1.

Chromium's fake-media flags serve a Y4M file (written here from a real face photo) as the webcam, so the
camera snapshot path is exercised too. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from devtools.launch import fake_camera_args, running_app, write_y4m
from fer_core.data import load_dataset
from fer_core.evaluation import misclassified_faces
from fer_core.leaderboard import ranked_checkpoints
from fer_core.naming import display_names
from fer_core.store import list_checkpoints, load_predictions

from .conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)")


def until(action, outcome, tries: int = 3) -> None:
    """Do `action` until `outcome` shows: a click or an upload that lands while Streamlit is still rerunning the
    page can be dropped with the element it went to."""
    from playwright.sync_api import expect

    for _ in range(tries - 1):
        action()
        try:
            expect(outcome).to_be_visible(timeout=30_000)
            return
        except AssertionError:
            continue
    action()
    expect(outcome).to_be_visible()


WAIT_MS = 120_000  # generous: the tests wait on events, and a loaded machine only makes them come later


def patient(page):
    """The page, with every wait of its own and of expect() up to WAIT_MS."""
    from playwright.sync_api import expect

    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    return page


def launch_with_fake_camera(playwright, video: Path):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=fake_camera_args(video))


@pytest.fixture()
def server(tiny_checkpoints, kaggle_zip, tmp_path):
    env = {"FER_CHECKPOINTS": str(tiny_checkpoints), "FER_DATA": str(kaggle_zip), "FER_RUNS": str(tmp_path / "runs")}
    with running_app(env) as (_, url):
        yield url


def test_browser_predict_camera_explain_evaluate(server, tiny_checkpoints, grace_hopper, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    video = write_y4m(grace_hopper, tmp_path / "face.y4m")
    names = display_names(c.meta for c in list_checkpoints(tiny_checkpoints) if c.meta)
    with sync_playwright() as p:
        browser = launch_with_fake_camera(p, video)
        context = browser.new_context(viewport={"width": 1280, "height": 800}, permissions=["camera"])
        page = context.new_page()
        patient(page)
        page.goto(server)
        expect(page.get_by_text("Leaderboard (PrivateTest)")).to_be_visible()
        expect(page.get_by_text("Blank images")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)

        page.get_by_role("link", name="Predict").click()
        page.locator("input[type=file]").first.set_input_files(str(grace_hopper))
        expect(page.get_by_text("1 face(s)").first).to_be_visible()
        for name in names.values():  # short names, not timestamped ids
            expect(page.get_by_text(name).first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "predict.png"), full_page=True)
        with page.expect_download() as download:
            page.get_by_role("button", name="Predictions (.csv)").click()
        rows = Path(download.value.path()).read_text().splitlines()
        assert rows[0].startswith("path,face,") and len(rows) == 2 + len(names)  # one face: a row per model, the ensemble
        assert rows[-1].split(",")[7] == "ensemble"  # the verdict the page headlines is in the download too
        assert {row.split(",")[7] for row in rows[1:-1]} == set(names)  # exports name checkpoints by id

        page.get_by_text("Camera", exact=True).click()  # the camera opens on request, below the results
        camera = page.get_by_test_id("stCameraInput")
        expect(camera.locator("video")).to_have_js_property("readyState", 4)  # streaming
        assert page.get_by_text("1 face(s)").first.bounding_box()["y"] < camera.bounding_box()["y"]  # results first
        page.get_by_role("button", name="Take Photo").click()
        expect(page.get_by_text("camera snapshot", exact=True)).to_be_visible()
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
        patient(page)
        page.goto(url)
        expect(page.get_by_text("keras_cnn training: epoch")).to_be_visible()
        page.reload()
        expect(page.get_by_text("keras_cnn training: epoch")).to_be_visible()
        page.get_by_role("button", name="Cancel").click()
        expect(page.get_by_text("keras_cnn was cancelled; nothing was saved.")).to_be_visible()
        browser.close()
    assert read_job(runs / job_id).state == "cancelled" and not (tmp_path / "ck").exists()


# Keeps the camera's stream where the test can stop it, as a camera unplugged mid-stream would.
KEEP_CAMERA = """(() => { const md = navigator.mediaDevices; if (!md) return; const open = md.getUserMedia.bind(md);
  md.getUserMedia = async (c) => (window.__camera = await open(c)); })()"""
# No ICE candidate reaches either peer, so they never connect: what a remote browser without a TURN server sees.
NO_CANDIDATES = """(() => { const P = RTCPeerConnection.prototype;
  const strip = (d) => d && new RTCSessionDescription({type: d.type,
    sdp: d.sdp.split('\\r\\n').filter((l) => !l.startsWith('a=candidate')).join('\\r\\n')});
  const local = Object.getOwnPropertyDescriptor(P, 'localDescription');
  Object.defineProperty(P, 'localDescription', {get() { return strip(local.get.call(this)); }});
  const setRemote = P.setRemoteDescription;
  P.setRemoteDescription = function (d) { return setRemote.call(this, strip(d)); };
  P.addIceCandidate = () => Promise.resolve();
  Object.defineProperty(P, 'onicecandidate', {set(f) {}, get() { return null; }});
  const listen = P.addEventListener;
  P.addEventListener = function (t, f, o) { if (t !== 'icecandidate') return listen.call(this, t, f, o); }; })()"""


def test_browser_live_camera_and_video_file(server, tiny_checkpoints, grace_hopper, tmp_path):
    """Live: the fake camera streams over WebRTC on localhost with no ICE server, annotated frames come back, the
    rate and the timeline fill in; a camera that stops and a connection that never forms are said so. Video file:
    upload, process, the per-frame CSV and the annotated mp4 download."""
    import csv

    import av
    from playwright.sync_api import expect, sync_playwright

    from .video_fixtures import face_frames, write_video

    ARTIFACTS.mkdir(exist_ok=True)
    camera = write_y4m(grace_hopper, tmp_path / "face.y4m")
    clip = write_video(face_frames(grace_hopper, 20, (320, 240), faces=2), tmp_path / "two-faces.mp4")
    models = len(list_checkpoints(tiny_checkpoints))
    with sync_playwright() as p:
        browser = launch_with_fake_camera(p, camera)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"], accept_downloads=True)
        context.add_init_script(KEEP_CAMERA)
        page = context.new_page()
        patient(page)
        page.goto(f"{server}/predict")
        page.get_by_text("Live", exact=True).click()
        streamer = page.frame_locator("iframe[title*=webrtc]")
        streamer.get_by_role("button", name="START").click()
        expect(page.get_by_text("Face 1, last 30 s")).to_be_visible()  # the timeline has data
        # frames per second: a real rate, however slowly a loaded machine processes them (never a 0.0)
        expect(page.get_by_test_id("stMetricValue").first).to_have_text(re.compile(r"^(?!0\.0$)\d+\.\d$"))
        video = streamer.locator("video")
        expect(video).to_have_js_property("readyState", 4)  # annotated frames are arriving and playing
        assert video.evaluate("v => v.videoWidth") == 640
        expect(page.get_by_test_id("stVegaLiteChart").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "predict_live.png"))
        component = next(f for f in page.frames if "webrtc" in f.url)
        component.evaluate("() => window.__camera.getTracks().forEach((t) => t.stop())")
        expect(page.get_by_text("the connection or the camera stopped")).to_be_visible()
        streamer.get_by_role("button", name="STOP").click()
        expect(page.get_by_text("Stopped after")).to_be_visible()

        unreachable = browser.new_context(permissions=["camera"])
        unreachable.add_init_script(NO_CANDIDATES)
        other = unreachable.new_page()
        other.goto(f"{server}/predict")
        other.get_by_text("Live", exact=True).click()
        other.frame_locator("iframe[title*=webrtc]").get_by_role("button", name="START").click()
        expect(other.get_by_text("No connection after")).to_be_visible()
        unreachable.close()

        page.get_by_text("Video file", exact=True).click()
        uploader = page.locator("input[type=file]").first
        ready = page.get_by_text("Press Process to run the chosen models over the video.")  # the upload has landed
        until(lambda: uploader.set_input_files(str(clip)), ready)  # every 5th frame, the default
        process = page.get_by_role("button", name="Process", exact=True)
        until(process.click, page.get_by_text("4 frames processed (every 5) · 2 face(s)"))
        with page.expect_download() as table:
            page.get_by_role("button", name="Per-frame predictions (.csv)").click()
        rows = list(csv.DictReader(Path(table.value.path()).read_text().splitlines()))
        assert len(rows) == 4 * 2 * (models + 1)  # frames x faces x (models + ensemble)
        assert {r["frame"] for r in rows} == {"0", "5", "10", "15"} and {r["face"] for r in rows} == {"1", "2"}
        with page.expect_download() as annotated:
            page.get_by_role("button", name="Annotated video (.mp4)").click()
        with av.open(annotated.value.path()) as container:
            assert sum(1 for _ in container.decode(video=0)) == 4
        expect(page.get_by_text("Face 2", exact=True)).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "predict_video.png"))
        (tmp_path / "not-a-video.mp4").write_text("plain text")
        until(lambda: uploader.set_input_files(str(tmp_path / "not-a-video.mp4")), ready)
        until(process.click, page.get_by_text("not-a-video.mp4: not a video file"))
        assert page.locator("text=Traceback").count() == 0
        browser.close()


def test_browser_hide_a_checkpoint_and_evaluate_own_data(tiny_checkpoints, kaggle_zip, own_dataset, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    store = tmp_path / "store"  # hiding writes to the store: a copy, not the session's fixture
    shutil.copytree(tiny_checkpoints, store)
    infos = list_checkpoints(store)
    names = display_names(c.meta for c in infos if c.meta)
    env = {"FER_CHECKPOINTS": str(store), "FER_DATA": str(kaggle_zip), "FER_RUNS": str(tmp_path / "runs")}
    with running_app(env) as (_, url), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        patient(page)
        page.goto(url)
        expect(page.get_by_text(f"{len(infos)} checkpoints. ")).to_be_visible()
        hide, show = (page.get_by_role("button", name=re.compile(f"{label}$")) for label in ("Hide", "Show again"))
        until(lambda: page.get_by_text("Hide or delete checkpoints").click(), hide)
        until(lambda: hide.click(), page.get_by_text(f"{len(infos) - 1} checkpoints. "))
        hidden = (store / ".hidden.json").read_text()
        assert sum(cid in hidden for cid in names) == 1
        page.screenshot(path=str(ARTIFACTS / "overview_hidden.png"), full_page=True)
        until(lambda: show.click(), page.get_by_text(f"{len(infos)} checkpoints. "))

        page.get_by_role("link", name="Evaluate").click()  # a misclassified test face opens in Explain
        best = ranked_checkpoints(c.meta for c in infos if c.meta)[0]  # what One model opens on
        _, mistakes = misclassified_faces(load_predictions(store / best), load_dataset(kaggle_zip), limit=40)
        face_name = mistakes[0].name  # the face the picker starts on: the most confident mistake
        page.get_by_role("link", name="Explain this face").click()
        expect(page.get_by_text("Feature maps", exact=True)).to_be_visible()
        expect(page.get_by_text(f"{face_name} (true:")).to_be_visible()

        page.get_by_role("link", name="Evaluate").click()
        page.get_by_role("tab", name="Your data").click()
        page.get_by_text("a path on this machine").click()
        field = page.get_by_label("Folder, zip or csv")
        until(lambda: (field.fill(str(own_dataset)), field.press("Enter")), page.get_by_role("button", name="Find faces"))
        page.get_by_role("button", name="Find faces").click()
        expect(page.get_by_text("on ckplus: accuracy on the 5 shared classes").first).to_be_visible()
        expect(page.get_by_text("2 found by the detector")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "evaluate_own_data.png"), full_page=True)

        page.get_by_role("link", name="Overview").click()  # a column for the dataset; then delete a checkpoint
        expect(page.get_by_text(f"{len(infos)} checkpoints. ")).to_be_visible()
        until(lambda: page.get_by_text("Hide or delete checkpoints").click(), hide)
        page.get_by_text("and its files for good").click()
        until(
            lambda: page.get_by_role("button", name=re.compile("Delete$")).click(),
            page.get_by_text(f"{len(infos) - 1} checkpoints. "),
        )
        assert len(list_checkpoints(store)) == len(infos) - 1
        assert page.locator("text=Traceback").count() == 0
        browser.close()


def test_browser_failures_label_noise_robustness_and_explain(tiny_checkpoints, kaggle_zip, ferplus_dir, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    store, cache = tmp_path / "store", tmp_path / "cache"  # a cache of its own: nothing computed yet for these weights
    shutil.copytree(tiny_checkpoints, store)
    env = {"FER_CHECKPOINTS": str(store), "FER_DATA": str(kaggle_zip), "FER_RUNS": str(tmp_path / "runs")}
    env["FER_CACHE_DIR"] = str(cache)
    with running_app(env) as (_, url), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        patient(page)
        page.goto(url + "/failures")
        expect(page.get_by_text("Brackets: bootstrap", exact=False)).to_be_visible()  # the crowd's votes were found
        expect(page.get_by_text("Label issues without a relabelling (cleanlab)")).to_be_visible()
        page.get_by_role("tab", name="Robustness").click()
        until(
            lambda: page.get_by_role("button", name=re.compile("^Compute for")).first.click(),
            page.get_by_text("Per class, and the faces a corruption broke"),
        )
        assert len(list((cache / "failures" / "robustness").glob("*.safetensors"))) == len(list_checkpoints(store))
        page.screenshot(path=str(ARTIFACTS / "failures_robustness.png"), full_page=True)
        assert page.locator("text=Traceback").count() == 0
        browser.close()


def test_browser_cancel_a_study_and_see_it_cancelled(kaggle_zip, tmp_path, monkeypatch):
    """A study training in the background, cancelled from the Studies page: 'cancelled', and no checkpoint."""
    from playwright.sync_api import expect, sync_playwright

    from fer_core.studies.runs import start_study
    from fer_core.studies.spec import parse_study

    from .test_studies import GOOD

    store, runs = tmp_path / "store", tmp_path / "runs"
    monkeypatch.setenv("FER_RUNS", str(runs))  # the study's device lock, where the app looks for it too
    text = GOOD.replace("[profiles.quick]\nepochs = 1", "[profiles.quick]\nepochs = 200")  # far longer than the test
    (tmp_path / "long.toml").write_text(text)
    start_study(tmp_path / "long.toml", parse_study(text, "long.toml"), "quick", str(kaggle_zip), "cpu", store)
    env = {"FER_CHECKPOINTS": str(store), "FER_DATA": str(kaggle_zip), "FER_RUNS": str(runs)}
    with running_app(env) as (_, url), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        patient(page)
        page.goto(url + "/studies")
        expect(page.get_by_text(re.compile(r"· [12] running"))).to_be_visible()  # a trial is training
        page.get_by_role("button", name="Cancel study").click()
        expect(page.get_by_text(re.compile(r"^cancelled · profile quick"))).to_be_visible()  # refreshed every 2 s
        expect(page.get_by_role("button", name="Cancel study")).to_have_count(0)  # nothing left to cancel
        assert page.locator("text=Traceback").count() == 0
        browser.close()
    assert not list_checkpoints(store)
