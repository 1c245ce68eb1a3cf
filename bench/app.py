"""The app's responsiveness: cold start to a rendered Overview, and a warm rerun of Predict with one photo.

    python bench/app.py [--repeats 3] [--reruns 20]

Cold: from spawning `streamlit run app.py` to the Overview showing "N checkpoints" (every shipped checkpoint
listed) in headless Chromium, which is started beforehand so its own start-up is not counted; the time to
the server's health check answering is printed beside it.
Warm: Streamlit's AppTest on the Predict page with one uploaded 1280x720 photo; after a first run (models
loaded, prediction cached), the median and p95 of --reruns reruns, which is what a user waits for when
clicking a widget on that page.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_core import list_checkpoints  # noqa: E402
from ui.launch import REPO, start_app, stop_app, wait_until_healthy  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def cold_start(n_checkpoints: int, repeats: int) -> list[tuple[float, float]]:
    from playwright.sync_api import expect, sync_playwright

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
                expect(page.get_by_text(f"{n_checkpoints} checkpoints")).to_be_visible(timeout=120_000)
                out.append((healthy, time.perf_counter() - t0))
            finally:
                stop_app(proc)
                page.close()
        browser.close()
    return out


def warm_predict(reruns: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    from bench.inference import sample_photo

    os.chdir(REPO)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/predict.py")
    at.run()
    at.file_uploader[0].set_value([("photo.jpg", sample_photo(), "image/jpeg")])
    at.run()
    assert not at.exception and [m.value for m in at.markdown if m.value.startswith("**Face")] == ["**Face 1**"]
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
    args = p.parse_args()
    n = sum(c.ok for c in list_checkpoints())
    print(f"machine: {platform.platform()}, {platform.processor() or 'cpu'}, {os.cpu_count()} CPUs; {n} checkpoints\n")
    cold = cold_start(n, args.repeats)
    for i, (healthy, shown) in enumerate(cold, 1):
        print(f"cold start {i}: server healthy after {healthy:.2f} s, Overview with {n} checkpoints after {shown:.2f} s")
    print(f"cold start median: {statistics.median(s for _, s in cold):.2f} s (target <= 3 s)\n")
    warm = warm_predict(args.reruns)
    q = statistics.quantiles(warm, n=20, method="inclusive")
    print(f"warm Predict rerun, one photo, {len(warm)} reruns: p50 {statistics.median(warm):.0f} ms, p95 {q[18]:.0f} ms "
          f"(target <= 300 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
