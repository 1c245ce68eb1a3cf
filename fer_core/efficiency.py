"""What a model costs on this machine's CPU: MACs from torch's FLOP counter, latency at batch 1, throughput."""

from __future__ import annotations

import platform
import time
from datetime import UTC, datetime

import numpy as np
import torch
from torch import nn

from .input_spec import InputSpec
from .records import Efficiency


def count_macs(model: nn.Module, spec: InputSpec) -> int:
    """Multiply-accumulates for one face, from torch's own FLOP counter (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    x = torch.zeros(1, spec.channels, spec.size, spec.size)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return int(counter.get_total_flops() // 2)


@torch.inference_mode()
def measure_speed(model: nn.Module, spec: InputSpec, repeats: int = 20, batch: int = 256) -> tuple[float, float]:
    """CPU latency at batch 1 (median ms) and throughput at `batch` (images/s)."""
    model = model.eval().cpu()
    one = torch.zeros(1, spec.channels, spec.size, spec.size)
    many = torch.zeros(batch, spec.channels, spec.size, spec.size)
    for _ in range(3):
        model(one)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model(one)
        times.append(time.perf_counter() - t)
    model(many)
    t = time.perf_counter()
    model(many)
    return float(np.median(times) * 1000), float(batch / (time.perf_counter() - t))


def efficiency(model: nn.Module, spec: InputSpec, batch: int = 256) -> Efficiency:
    """MACs and CPU speed, stamped with the machine: figures from different machines must not be compared blindly."""
    latency_ms, throughput = measure_speed(model, spec, batch=batch)
    return Efficiency(
        macs=count_macs(model, spec),
        latency_ms_b1=latency_ms,
        throughput_per_s=throughput,
        throughput_batch=batch,
        threads=torch.get_num_threads(),
        measured_on=platform.platform(),
        processor=platform.processor() or "unknown",
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
