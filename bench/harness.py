"""What every benchmark shares: the machine line it prints first, repeated timings and their percentiles."""

from __future__ import annotations

import io
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any


def machine(**details: Any) -> str:
    """One line naming the machine (figures from different machines must not be compared blindly)."""
    parts = [platform.platform(), platform.processor() or "cpu", f"{os.cpu_count()} CPUs"]
    try:
        import torch

        parts.append(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    except ImportError:
        pass
    parts += [f"{k.replace('_', ' ')} {v}" for k, v in details.items()]
    return "machine: " + ", ".join(parts)


def timed_ms(fn: Callable[[], object], runs: int, warmup: int = 3) -> list[float]:
    """Wall-clock milliseconds of `runs` calls of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    """Median and 95th percentile (the median twice for a single sample)."""
    if len(samples) < 2:
        return samples[0], samples[0]
    return statistics.median(samples), statistics.quantiles(samples, n=20, method="inclusive")[18]


def sample_photo() -> bytes:
    """A 1280x720 JPEG with one real face, from a file that ships with matplotlib (nothing downloaded)."""
    import matplotlib.cbook
    from PIL import Image

    face = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    face = face.resize((int(face.width * 480 / face.height), 480))
    canvas = Image.new("RGB", (1280, 720), (96, 110, 124))
    canvas.paste(face, ((1280 - face.width) // 2, 120))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    return buf.getvalue()
