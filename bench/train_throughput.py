"""Training throughput: fer_core's loop against a baseline measured in the same run.

    python -m bench.train_throughput [--data ../shared/data/fer2013/fer2013.zip] [--models keras_cnn,resnet18]
    python -m bench.train_throughput --device cuda --models resnet18,vgg_fer
    python -m bench.train_throughput --models keras_cnn_wide,shufflenet_v2 --precisions fp32,bf16
    python -m bench.train_throughput --models keras_cnn_wide,shufflenet_v2 --layouts

Ours: the whole train split as one uint8 tensor, kornia batch augmentation, `fer_core.training.fit`.
CPU baseline: the textbook pipeline - the zip extracted to disk, torchvision ImageFolder + PIL transforms +
DataLoader (2 workers), same model, batch size and augmentation; `--precisions` adds one column of ours per
training precision (`--precision`: bf16 autocasts on the CPU, which pays on cores with native bf16);
`--layouts` times compute-only float32 steps in the contiguous layout against channels_last (what the CPU uses).
GPU baseline: compute only - one random batch already on the GPU, no augmentation, same model, optimizer,
AMP (bf16) and channels_last: the ceiling the data pipeline can reach.
Both run `--batches` timed batches after `--warmup` untimed ones; the script prints images/s and the ratio.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F

from fer_core.data import find_default_dataset, load_dataset
from fer_core.models import get_spec
from fer_core.training import COMPILE_MODES, PRECISIONS, Callbacks, TrainingCancelled, fit, make_config, preset_for
from fer_core.training.loop import autocast, autocast_dtype
from fer_core.training.optim import make_optimizer

from .harness import machine


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours(
    model_name: str,
    data,
    batch_size: int,
    warmup: int,
    batches: int,
    device: torch.device,
    compile_mode: str = "none",
    precision: str = "auto",
) -> float:
    spec = get_spec(model_name)
    if device.type == "cpu":  # the textbook baseline's optimizer and augmentation
        cfg = make_config(
            model_name,
            "custom",
            batch_size=batch_size,
            augment="light",
            epochs=1,
            device="cpu",
            warmup_epochs=0,
            precision=precision,
        )
    else:  # the model's own recipe, AMP and channels_last as the zoo trains
        cfg = make_config(
            model_name, preset_for(model_name), batch_size=batch_size, epochs=1, device=str(device), compile=compile_mode
        )
    marks: list[float] = []

    def on_batch(epoch, batch, total, loss):
        if batch in (warmup, warmup + batches):  # the GPU runs ahead of Python: time whole batches only
            _sync(device)
        marks.append(time.perf_counter())

    stop = Callbacks(on_batch=on_batch, should_stop=lambda: len(marks) >= warmup + batches)
    try:
        fit(spec.build(len(data.classes)), spec, data, cfg, device, stop)
    except TrainingCancelled:
        pass
    return batches * batch_size / (marks[-1] - marks[warmup - 1])


def compute_only(
    model_name: str,
    batch_size: int,
    warmup: int,
    batches: int,
    device: torch.device,
    compile_mode: str = "none",
    layout: torch.memory_format = torch.channels_last,
    precision: str = "bf16",
) -> float:
    spec = get_spec(model_name)
    cfg = make_config(model_name, preset_for(model_name), batch_size=batch_size, device=str(device))
    model = spec.build(7).to(device).to(memory_format=layout).train()
    optimizer = make_optimizer(model.parameters(), cfg)
    step_model = model if compile_mode == "none" else torch.compile(model, mode=compile_mode)
    size = spec.input.size
    x = torch.randn(batch_size, spec.input.channels, size, size, device=device).contiguous(memory_format=layout)
    y = torch.randint(0, 7, (batch_size,), device=device)
    dtype = autocast_dtype(precision, device)  # as fit() autocasts
    for i in range(warmup + batches):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        with autocast(device, dtype):
            loss = F.cross_entropy(step_model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync(device)
    return batches * batch_size / (time.perf_counter() - t0)


def textbook(model_name: str, root: Path, batch_size: int, warmup: int, batches: int) -> float:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [
            transforms.Grayscale(),
            transforms.RandomHorizontalFlip(),
            transforms.RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1)),
            transforms.ToTensor(),
            transforms.Normalize([0.5], [0.5]),
        ]
    )
    loader = DataLoader(
        datasets.ImageFolder(str(root / "train"), tf), batch_size=batch_size, shuffle=True, num_workers=2, persistent_workers=True
    )
    spec = get_spec(model_name)
    model = spec.build(7).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    marks = []
    for x, y in loader:
        if spec.input.size != 48:
            x = F.interpolate(x, size=spec.input.size, mode="bilinear")
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        marks.append(time.perf_counter())
        if len(marks) >= warmup + batches:
            break
    return batches * batch_size / (marks[-1] - marks[warmup - 1])


def print_layouts(models: list[str], batch_size: int, warmup: int, batches: int, device: torch.device) -> None:
    """Compute-only float32 steps in the contiguous layout against channels_last, per model."""
    print(f"{'model':<16} {'contiguous img/s':>17} {'channels_last img/s':>20} {'ratio':>7}")
    for name in models:
        run = functools.partial(compute_only, name, batch_size, warmup, batches, device, precision="fp32")
        base, fast = run(layout=torch.contiguous_format), run(layout=torch.channels_last)
        print(f"{name:<16} {base:>17.1f} {fast:>20.1f} {fast / base:>6.2f}x", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default=str(find_default_dataset() or ""))
    p.add_argument("--models", default="keras_cnn,resnet18")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--device", default="cpu", help="cpu: against the textbook pipeline; cuda: against compute only")
    p.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        default="none",
        help="on CUDA, torch.compile both loops in this mode (reduce-overhead: CUDA graphs)",
    )
    p.add_argument("--precisions", default="auto", help=f"on the CPU, ours at each of these ({', '.join(PRECISIONS)})")
    p.add_argument("--layouts", action="store_true", help="compute-only float32 steps, contiguous against channels_last")
    p.add_argument("--profile", action="store_true", help="only profile our loop (torch.profiler, top operators)")
    args = p.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} torch threads"
    print(
        machine(device=name) + f"; batch {args.batch_size}, "
        f"{args.batches} timed batches after {args.warmup} warm-up; torch.compile {args.compile}\n"
    )
    if args.layouts:  # random batches: no dataset to read
        print_layouts(args.models.split(","), args.batch_size, args.warmup, args.batches, device)
        return 0
    if not args.data.endswith(".zip") or not Path(args.data).is_file():
        print("needs the Kaggle fer2013.zip: pass --data PATH", file=sys.stderr)
        return 1
    data = load_dataset(args.data)
    n_train = len(data.indices("train"))
    if args.profile:
        for name in args.models.split(","):
            activities = [torch.profiler.ProfilerActivity.CPU] + (
                [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else []
            )
            with torch.profiler.profile(activities=activities) as prof:
                ours(name, data, args.batch_size, args.warmup, args.batches, device)
            print(
                f"{name}: top operators over {args.warmup + args.batches} batches\n"
                + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
            )
        return 0
    if device.type == "cuda":
        print(f"{'model':<14} {'compute-only img/s':>19} {'fer_core img/s':>15} {'ratio':>7} {'s/epoch':>8}")
        for name in args.models.split(","):
            base = compute_only(name, args.batch_size, args.warmup, args.batches, device, args.compile)
            fast = ours(name, data, args.batch_size, args.warmup, args.batches, device, args.compile)
            print(f"{name:<14} {base:>19.0f} {fast:>15.0f} {fast / base:>6.0%} {n_train / fast:>8.1f}", flush=True)
        return 0
    precisions = args.precisions.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        zipfile.ZipFile(args.data).extractall(tmp)
        print(f"{'model':<16} {'textbook img/s':>15}" + "".join(f" {'ours ' + p + ' img/s (ratio)':>26}" for p in precisions))
        for name in args.models.split(","):
            base = textbook(name, Path(tmp), args.batch_size, args.warmup, args.batches)
            row = f"{name:<16} {base:>15.1f}"
            for precision in precisions:
                fast = ours(name, data, args.batch_size, args.warmup, args.batches, device, precision=precision)
                row += f" {f'{fast:.1f} ({fast / base:.2f}x)':>26}"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
