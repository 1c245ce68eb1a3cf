"""What the augmentation presets cost per training batch, against the strong preset measured in the same run.

    python -m bench.augment [--batch 128] [--repeats 30] [--device cpu|cuda]

Each preset augments batches of 128 48x48 faces on the device (fer_core.data.augment, kornia), timed in rounds
that interleave the presets so that load from other work falls on all of them alike; prints the median ms per
batch, the ratio to `strong`, and, for scale, one training step (forward, backward, Adam) of keras_cnn_wide on the
same batch: the share of a step that augmentation takes.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from functools import partial

import torch

from fer_core.data.augment import augment_batch, build_augmentation
from fer_core.data.choices import AUGMENT_PRESETS
from fer_core.models import get_spec

from .harness import machine, timed_ms


def _synced(fn: Callable[[], object], device: torch.device) -> Callable[[], None]:
    """`fn` waiting for the device (CUDA runs asynchronously), so that its time is the work's."""

    def call() -> None:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return call


def train_step_ms(faces: torch.Tensor, device: torch.device, repeats: int) -> float:
    model = get_spec("keras_cnn_wide").build(7).to(device).train()
    optimizer = torch.optim.Adam(model.parameters())
    labels = torch.randint(0, 7, (len(faces),), device=device)

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(faces), labels).backward()
        optimizer.step()

    return statistics.median(timed_ms(_synced(step, device), repeats))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    faces = torch.rand(args.batch, 1, 48, 48, device=device)
    presets = {name: build_augmentation(name).to(device) for name in AUGMENT_PRESETS}
    calls = {name: _synced(partial(augment_batch, module, faces), device) for name, module in presets.items()}
    for call in calls.values():
        call()  # warm-up: kernels, caches
    times: dict[str, list[float]] = {name: [] for name in presets}
    for _ in range(args.repeats):  # one call of each per round: load from other work falls on all alike
        for name, call in calls.items():
            times[name] += timed_ms(call, 1, warmup=0)
    step = train_step_ms(faces, device, max(5, args.repeats // 3))
    print(machine())
    print(f"\nbatch of {args.batch} faces on {device}; keras_cnn_wide training step {step:.1f} ms (median)\n")
    print("| preset | ms per batch (median) | vs strong | share of a training step |")
    print("|---|---|---|---|")
    strong = statistics.median(times["strong"])
    for name, samples in times.items():
        ms = statistics.median(samples)
        print(f"| {name} | {ms:.2f} | {ms / strong:.2f}x | {ms / (ms + step):.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
