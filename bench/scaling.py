"""How training cost grows with the data and the batch: epoch time and peak memory, one process per setting.

    python -m bench.scaling [--model keras_cnn] [--device cpu] [--batches 15]

Settings: the FER2013 training split repeated 1x, 2x and 4x (batch 128), and batch sizes 32-512 (1x data).
Each setting runs in a fresh process (so its peak RSS is its own): `fit` for --batches timed batches after 3
warm-up ones; the epoch time is extrapolated from the measured images/s (the table says so). Peak memory is
the process's max RSS, and on CUDA also torch's peak allocated GPU memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from fer_core.data import SPLITS, find_default_dataset, load_dataset
from fer_core.models import get_spec
from fer_core.training import Callbacks, TrainingCancelled, fit, make_config

from .harness import machine

WARMUP = 3


def repeated_train(data, times: int):
    """The training split `times` over (validation and test once), as FER2013 grown by repetition."""
    train = data.indices("train")
    rest = torch.cat([data.indices("val"), data.indices("test")])
    order = torch.cat([train.repeat(times), rest])
    return replace(
        data,
        images=data.images[order],
        labels=data.labels[order],
        split=data.split[order],
        names=tuple(data.names[i] for i in order.tolist()),
        soft_labels=None,
        fingerprint="",
    )


def one_setting(args) -> dict:
    data = repeated_train(load_dataset(args.data), args.repeat)
    device = torch.device(args.device)
    spec = get_spec(args.model)
    cfg = make_config(args.model, batch_size=args.batch_size, epochs=1, device=args.device, warmup_epochs=0)
    marks: list[float] = []

    def on_batch(epoch, batch, batches, loss):
        if device.type == "cuda" and batch in (WARMUP, WARMUP + args.batches):
            torch.cuda.synchronize()
        marks.append(time.perf_counter())

    stop = Callbacks(on_batch=on_batch, should_stop=lambda: len(marks) >= WARMUP + args.batches)
    try:
        fit(spec.build(len(data.classes)), spec, data, cfg, device, stop)
    except TrainingCancelled:
        pass
    img_s = args.batches * args.batch_size / (marks[-1] - marks[WARMUP - 1])
    n_train = len(data.indices("train"))
    return {
        "repeat": args.repeat,
        "batch_size": args.batch_size,
        "train_faces": n_train,
        "img_s": img_s,
        "epoch_s": n_train / img_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(find_default_dataset() or ""))
    p.add_argument("--model", default="keras_cnn")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batches", type=int, default=15)
    p.add_argument("--repeat", type=int, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if not args.data or not Path(args.data).exists():
        print("FER2013 not found: pass --data PATH", file=sys.stderr)
        return 1
    if args.repeat:
        print(json.dumps(one_setting(args)))
        return 0
    settings = [(1, 128), (2, 128), (4, 128), (1, 32), (1, 64), (1, 256), (1, 512)]
    print(
        machine(
            model=f"{args.model} on {args.device}",
            timed_batches=f"{args.batches} after {WARMUP} warm-up per setting",
            splits=SPLITS,
        )
        + "\n"
    )
    print(
        f"{'data':>5} {'batch':>6} {'train faces':>12} {'img/s':>8} {'epoch s (extrapolated)':>23} "
        f"{'peak RSS MB':>12} {'peak GPU MB':>12}"
    )
    for repeat, batch in settings:
        cmd = [
            sys.executable,
            "-m",
            "bench.scaling",
            "--data",
            args.data,
            "--model",
            args.model,
            "--device",
            args.device,
            "--batches",
            str(args.batches),
            "--repeat",
            str(repeat),
            "--batch-size",
            str(batch),
        ]
        r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        gpu = f"{r['peak_gpu_mb']:.0f}" if r["peak_gpu_mb"] is not None else "-"
        print(
            f"{repeat:>4}x {batch:>6} {r['train_faces']:>12,} {r['img_s']:>8.0f} {r['epoch_s']:>23.0f} "
            f"{r['peak_rss_mb']:>12.0f} {gpu:>12}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
