"""Train the shipped model zoo: every recipe below at once on one GPU, each for the same wall-clock budget.

    python -m bench.train_zoo --data ../shared/data/fer2013/fer2013.zip --budget-min 17 --out /tmp/zoo

Each run is a plain `python -m fer_core train` process, so any line of RECIPES can be rerun by hand; logs go to
OUT/runs/NAME/log.txt and checkpoints to OUT/checkpoints. The runs share the GPU (a launch-bound small CNN leaves
most of an H100 idle), so the train time each checkpoint records is wall-clock under that sharing. With a time
budget the cosine schedule anneals over minutes, not epochs (see fer_core.training.loop.fit).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from fer_core.repository import REPO
from fer_core.store import list_checkpoints
from fer_core.training.config import COMPILE_MODES

# name -> `fer_core train` arguments on top of the model's preset (fer_core.training.presets).
RECIPES: dict[str, list[str]] = {
    "vgg_fer": ["--model", "vgg_fer"],
    "resnet18": ["--model", "resnet18"],
    "vgg16_bn": ["--model", "vgg16_bn"],
    "alexnet": ["--model", "alexnet", "--lr", "0.01"],  # no BatchNorm: the preset's 0.05 is too hot for it
    "mobilenet_v2": ["--model", "mobilenet_v2"],
    "shufflenet_v2": ["--model", "shufflenet_v2"],
    "efficientnet_b0": ["--model", "efficientnet_b0"],
    "xception_fer": ["--model", "xception_fer"],
    "cnn_4conv_4fc": ["--model", "cnn_4conv_4fc"],
    "keras_cnn": ["--model", "keras_cnn"],
    "keras_cnn_wide": ["--model", "keras_cnn_wide"],
    "keras_cnn_wide-strong": ["--model", "keras_cnn_wide", "--augment", "strong"],
    "keras_cnn_5x5": ["--model", "keras_cnn_5x5"],
    "keras_cnn_4block": ["--model", "keras_cnn_4block"],
    "xception_fer-ferplus": ["--model", "xception_fer", "--labels", "ferplus"],
    "keras_cnn_wide-ferplus": ["--model", "keras_cnn_wide", "--labels", "ferplus"],
}


def launch(name: str, args: argparse.Namespace) -> subprocess.Popen:
    job_dir = args.out / "runs" / name
    job_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "fer_core",
        "train",
        *RECIPES[name],
        "--data",
        str(args.data),
        "--time-budget",
        str(args.budget_min),
        "--epochs",
        "1000",
        "--no-efficiency",
        "--seed",
        str(args.seed),
        "--compile",
        args.compile,
        "--checkpoints",
        str(args.out / "checkpoints"),
        "--job-dir",
        str(job_dir),
    ]
    if args.teachers:
        cmd += ["--teachers", args.teachers, "--teacher-weight", str(args.teacher_weight)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = (job_dir / "log.txt").open("wb")
    log.write((" ".join(cmd) + "\n").encode())
    log.flush()
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO, env=env)


def summary(checkpoints: Path) -> str:
    rows = []
    for info in list_checkpoints(checkpoints):
        if (meta := info.meta) is None:
            rows.append(f"{info.id:<48} {info.error}")
            continue
        m, best = meta.test_metrics, max(e.val_acc for e in meta.history)
        rows.append(
            f"{info.id:<48} {meta.data.label_source:<8} {best:>8.4f} {m.accuracy:>8.4f} "
            f"{m.macro_f1:>8.4f} {meta.best_epoch:>5}/{meta.epochs_run:<5} {meta.train_time_s / 60:>6.1f}"
        )
    head = f"{'checkpoint':<48} {'labels':<8} {'val acc':>8} {'test acc':>8} {'macro F1':>8} {'best/run':>11} {'min':>6}"
    return "\n".join([head, *rows])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="the Kaggle fer2013.zip (FER+ csvs in a sibling ferplus/)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--budget-min", type=float, default=17.0)
    p.add_argument("--only", help="comma-separated recipe names (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        default="none",
        help="torch.compile mode for every run; reduce-overhead (CUDA graphs) measured 3.2x faster for ResNet-18 on an H100",
    )
    p.add_argument(
        "--teachers",
        metavar="DIR,DIR",
        help="distil every run from these checkpoint folders (same classes and data, e.g. the shipped FER2013 models)",
    )
    p.add_argument("--teacher-weight", type=float, default=0.5, help="teachers' share of each target (with --teachers)")
    args = p.parse_args()
    names = args.only.split(",") if args.only else list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        p.error(f"unknown recipes {unknown}; known: {', '.join(RECIPES)}")
    t0 = time.time()
    procs = {name: launch(name, args) for name in names}
    print(f"started {len(procs)} runs, {args.budget_min} min each", flush=True)
    for name, proc in procs.items():
        code = proc.wait()
        print(f"{name}: exit {code} after {(time.time() - t0) / 60:.1f} min", flush=True)
    print(summary(args.out / "checkpoints"), flush=True)
    return 0 if all(proc.returncode == 0 for proc in procs.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
