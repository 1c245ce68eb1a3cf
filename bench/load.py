"""Load: N browser tabs predicting on uploaded photos against one `streamlit run app.py`, for a fixed time.

    python -m bench.load [--sessions 1,4,10] [--seconds 60]

Each tab loops: open the Predict page (a new session), upload a photo no one has sent before (a random
patch in one corner defeats the prediction cache, so every request runs detection and every model), and
wait until its faces and predictions are shown. Printed per N: requests served, errors (timeouts, error
boxes, tracebacks), latency p50/p95 from upload to predictions shown, and the server's RSS sampled every
second: after warm-up (first quarter of the run), peak, and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from devtools.launch import running_app

from .harness import machine, percentiles, sample_photo

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def unique_photo(base: Image.Image, rng: np.random.Generator, folder: Path, n: int) -> Path:
    img = base.copy()
    img.paste(tuple(int(v) for v in rng.integers(0, 256, 3)), (0, 0, 24, 24))
    path = folder / f"photo-{n}.jpg"
    img.save(path, "JPEG", quality=90)
    return path


@dataclass
class LoadStats:
    """What one load level measured across its tabs."""

    served: int = 0
    errors: int = 0
    latency_ms: list[float] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (time, server RSS MB)


async def tab(browser, url: str, deadline: float, folder: Path, seed: int, stats: LoadStats) -> None:
    rng = np.random.default_rng(seed)
    base = Image.open(io.BytesIO(sample_photo()))
    page = await browser.new_page()
    n = 0
    while time.time() < deadline:
        n += 1
        photo = unique_photo(base, rng, folder, seed * 100_000 + n)
        try:
            await page.goto(f"{url}/predict")
            await page.locator("input[type=file]").first.wait_for(state="attached", timeout=60_000)
            t = time.perf_counter()
            await page.locator("input[type=file]").first.set_input_files(str(photo))
            await page.get_by_text("Face 1").first.wait_for(timeout=60_000)
            stats.latency_ms.append((time.perf_counter() - t) * 1000)
            if await page.locator("text=Traceback").count() or await page.locator("[data-testid=stException]").count():
                stats.errors += 1
            else:
                stats.served += 1
        except Exception as exc:  # a timeout or a dead page is an error of the server under load
            stats.errors += 1
            stats.messages.append(f"{type(exc).__name__}: {str(exc)[:120]}")
    await page.close()


async def one_load(url: str, pid: int, sessions: int, seconds: float) -> LoadStats:
    from playwright.async_api import async_playwright

    stats = LoadStats()
    deadline = time.time() + seconds
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])

        async def sample_memory() -> None:
            while time.time() < deadline:
                stats.rss.append((time.time(), rss_mb(pid)))
                await asyncio.sleep(1)

        with tempfile.TemporaryDirectory() as tmp:
            await asyncio.gather(sample_memory(), *[tab(browser, url, deadline, Path(tmp), s, stats) for s in range(sessions)])
        await browser.close()
    return stats


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", default="1,4,10")
    p.add_argument("--seconds", type=float, default=60)
    args = p.parse_args()
    print(machine(load=f"{args.seconds:.0f} s per level, one server for all levels") + "\n")
    print(f"{'tabs':>4} {'served':>7} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} {'RSS MB warm':>12} {'peak':>7} {'end':>7}")
    with running_app() as (proc, url):
        for sessions in [int(s) for s in args.sessions.split(",")]:
            s = asyncio.run(one_load(url, proc.pid, sessions, args.seconds))
            lat = s.latency_ms
            p50, p95 = percentiles(lat) if lat else (float("nan"), float("nan"))
            rss = [r for _, r in s.rss]
            warm = rss[len(rss) // 4] if rss else float("nan")
            print(
                f"{sessions:>4} {s.served:>7} {s.errors:>7} {p50:>8.0f} {p95:>8.0f} {warm:>12.0f} "
                f"{max(rss, default=float('nan')):>7.0f} {rss[-1] if rss else float('nan'):>7.0f}",
                flush=True,
            )
            for message in sorted(set(s.messages))[:5]:
                print(f"     error: {message}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
