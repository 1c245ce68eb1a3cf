"""The app's responsiveness: cold start to a rendered Overview, a warm rerun of Predict with one photo, and a
photo from upload to drawn results in the browser.

    python -m bench.app [--repeats 3] [--reruns 20] [--photos 8] [--parts cold,photos,warm]

Cold: from spawning `streamlit run app.py` to the Overview showing "N checkpoints" (every shipped checkpoint
listed) and the leaderboard table drawn in headless Chromium, which is started beforehand so its own start-up
is not counted; the time to the server's health check answering is printed beside it.
Warm: Streamlit's AppTest on the Predict page with one uploaded 1280x720 photo; after a first run (models
loaded, prediction cached), the median and p95 of --reruns reruns, which is what a user waits for when
clicking a widget on that page.
Photo: in headless Chromium on Predict (the default models: the leaderboard's default ensemble), from handing
the uploader a new photo to its results drawn (every face's CSV download button shown), the previous photo
removed first (not timed); the first photo after the server started (models not yet loaded) is the cold
figure, the following ones, each a different photo (no cached prediction), the warm figures: --photos of each
size, from a 0.3 MP photo with one face to a 12 MP phone photo (4032x3024 JPEG) with four.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from devtools.launch import REPO, start_app, stop_app, wait_until_healthy
from fer_core import list_checkpoints

from .harness import machine, percentiles

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


# Checked in the page every 50 ms (Playwright's own expect polls with a growing back-off, which
# added up to ~0.5 s to a ~3 s figure).
OVERVIEW_SHOWN = """n => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]
                       .some(e => e.textContent.trim().startsWith(`${n} checkpoints.`))
                  && [...document.querySelectorAll('[data-testid=stDataFrame] canvas')].some(c => c.width && c.height)"""
SIDEBAR_SHOWN = "() => [...document.querySelectorAll('[data-testid=stSidebar] button')].some(b => b.innerText.trim() === 'Start')"


def cold_start(n_checkpoints: int, repeats: int) -> list[tuple[float, float, float]]:
    """(server healthy, Overview shown, sidebar training panel shown) in seconds after `streamlit run`."""
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        for _ in range(repeats):
            page = browser.new_page()
            t0 = time.perf_counter()
            proc, url = start_app()
            try:
                wait_until_healthy(proc, url)
                healthy = time.perf_counter() - t0
                page.goto(url)
                page.wait_for_function(OVERVIEW_SHOWN, arg=n_checkpoints, polling=50, timeout=120_000)
                shown = time.perf_counter() - t0
                page.wait_for_function(SIDEBAR_SHOWN, polling=50, timeout=120_000)
                out.append((healthy, shown, time.perf_counter() - t0))
            finally:
                stop_app(proc)
                page.close()
        browser.close()
    return out


PHOTO_SIZES = ((640, 480, 1), (1280, 720, 1), (2400, 1800, 2), (4032, 3024, 4))  # width, height, faces


def photo_variants(n: int, width: int = 1280, height: int = 720, faces: int = 1) -> list[bytes]:
    """`n` different photos of `faces` faces (shifted and brightened): none is a cache hit for another."""
    import matplotlib.cbook
    from PIL import Image, ImageEnhance

    face = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    side = int(height * 0.6 / max(1, faces // 2))  # several faces: smaller, as in a group photo
    face = face.resize((int(face.width * side / face.height), side))
    out = []
    for i in range(n):
        canvas = Image.new("RGB", (width, height), (96, 110, 124))
        for k in range(faces):
            canvas.paste(face, (int((k + 0.1) * width / faces) + 4 * i, (height - side) // 2))
        buf = io.BytesIO()
        ImageEnhance.Brightness(canvas).enhance(0.9 + 0.02 * i).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


RESULTS_SHOWN = """n => [...document.querySelectorAll('[data-testid=stDownloadButton] button')]
                      .filter(b => b.innerText.includes('Predictions (.csv)')).length >= n"""


def idle(page) -> None:
    """Until Streamlit's running indicator is gone: the rerun has finished."""
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", polling=20, timeout=60_000)


def photos_in_browser(n: int) -> dict[tuple[int, int, int], list[float]]:
    """Per photo size, seconds from handing the uploader each new photo to its results drawn; the very first
    photo (the smallest size's first) is after a cold start."""
    from playwright.sync_api import sync_playwright

    times: dict[tuple[int, int, int], list[float]] = {}
    folder = Path(tempfile.mkdtemp())
    files = []
    for size in PHOTO_SIZES:
        for i, data in enumerate(photo_variants(n, *size)):
            files.append((size, folder / f"photo{size[0]}-{i}.jpg"))
            files[-1][1].write_bytes(data)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        proc, url = start_app()
        try:
            wait_until_healthy(proc, url)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url + "/predict")
            uploader = page.locator("[data-testid=stFileUploaderDropzoneInput]")
            uploader.wait_for(state="attached", timeout=120_000)
            time.sleep(2)  # the page's first run has finished: what is timed is the photo, not the page load
            for size, file in files:
                t = time.perf_counter()
                uploader.set_input_files(str(file))
                page.wait_for_function(RESULTS_SHOWN, arg=1, polling=20, timeout=120_000)
                times.setdefault(size, []).append(time.perf_counter() - t)
                idle(page)
                page.locator("[data-testid=stFileChipDeleteBtn]").first.click()  # one photo on the page at a time
                page.wait_for_function(f"() => !({RESULTS_SHOWN})(1)", polling=20, timeout=60_000)
                idle(page)
        finally:
            stop_app(proc)
            browser.close()
            shutil.rmtree(folder, ignore_errors=True)
    return times


def warm_predict(reruns: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    from .harness import sample_photo

    os.chdir(REPO)
    at = AppTest.from_file(str(REPO / "workbench.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/predict.py")
    at.run()
    at.file_uploader[0].set_value([("photo.jpg", sample_photo(), "image/jpeg")])
    at.run()
    assert not at.exception and [m.value.split(":")[0] for m in at.markdown if m.value.startswith("**Face")] == ["**Face 1**"]
    times = []
    for _ in range(reruns):
        t = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - t) * 1000)
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--reruns", type=int, default=20)
    p.add_argument("--photos", type=int, default=8, help="photos of each size uploaded one after another in the browser")
    p.add_argument("--parts", default="cold,photos,warm", help="which measurements, comma-separated")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    n = sum(c.ok for c in list_checkpoints())
    print(machine(checkpoints=n) + "\n")
    if "cold" in parts:
        cold = cold_start(n, args.repeats)
        for i, (healthy, shown, sidebar) in enumerate(cold, 1):
            print(
                f"cold start {i}: server healthy after {healthy:.2f} s, Overview with {n} checkpoints after {shown:.2f} s, "
                f"sidebar training panel after {sidebar:.2f} s"
            )
        print(
            f"cold start median: {statistics.median(s for _, s, _ in cold):.2f} s (target <= 3 s); sidebar training panel "
            f"{statistics.median(s for _, _, s in cold):.2f} s\n"
        )
    if "photos" in parts:
        photos = photos_in_browser(args.photos)
        print(
            f"photo upload to drawn results in Chromium: first after a cold start {photos[PHOTO_SIZES[0]][0]:.2f} s "
            "(target <= 3 s)"
        )
        for (width, height, faces), times in photos.items():
            warm_p50, warm_p95 = percentiles([1000 * t for t in times[1:]])
            print(
                f"  {width}x{height} ({width * height / 1e6:.1f} MP), {faces} face(s): {len(times) - 1} photos after the first, "
                f"p50 {warm_p50:.0f} ms, p95 {warm_p95:.0f} ms, max {1000 * max(times[1:]):.0f} ms (target p50 <= 500 ms)"
            )
        print()
    if "warm" in parts:
        warm = warm_predict(args.reruns)
        p50, p95 = percentiles(warm)
        print(f"warm Predict rerun, one photo, {len(warm)} reruns: p50 {p50:.0f} ms, p95 {p95:.0f} ms (target <= 300 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
