"""What running trials on Ray Tune costs, measured in one run (issue #16).

    python -m bench.studies --data ../shared/data/fer2013/fer2013.zip [--epochs 4] [--fraction 0.1]

1. Startup of the local Ray instance (start_ray + shutdown).
2. Overhead: one trial as a one-trial study (`fer_core study run`, Ray's start and stop included) against the same
   TrainConfig trained by `fer_core train`, each a fresh process with one thread (target <= 5% on a 2-minute
   trial). Fresh processes on both sides: a trial trained inside this process ran 12-18% slower than the same trial
   in a Ray worker (measured), which would hide Ray's cost.
3. The same per trial in a study of three trials run one at a time against three `fer_core train`: a worker trains
   trial after trial (Tune's reuse_actors), so Ray's start and the worker's imports are paid once.
4. Two trials at once (one CPU each) against the same two trained one after the other with every thread of this
   machine: on two compute-bound cores expect about 1x.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fer_core.studies.runner import start_ray
from fer_core.studies.spec import parse_study

from .harness import machine

STUDY = """
name = "overhead"
seeds = {seeds}
[base]
model = "keras_cnn"
augment = "light"
[axes]
optimizer = ["adam"]
[search]
concurrent = {concurrent}
[profiles.bench]
train_fraction = {fraction}
epochs = {epochs}
"""


def _cli(args: list[str], threads: int) -> float:
    """Seconds of `python -m fer_core ARGS` in a fresh process with `threads` threads."""
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "fer_core", *args],
        env={**os.environ, "OMP_NUM_THREADS": str(threads)},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t


def timed_study(text: str, data: str, root: Path) -> float:
    """Seconds of `fer_core study run` of a study file (a local Ray instance started and stopped by it)."""
    path = root / f"study-{time.monotonic_ns()}.toml"
    path.write_text(text)
    ck, runs = str(root / "ck"), str(root / "runs")
    return _cli(
        ["study", "run", str(path), "--profile", "bench", "--data", data, "--device", "cpu", "--checkpoints", ck, "--runs", runs],
        1,
    )


def timed_direct(text: str, data: str, root: Path, threads: int) -> float:
    """Seconds of `fer_core train` of each of a study's trials, one after the other (no Ray)."""
    total = 0.0
    for trial in parse_study(text).trials("bench", data=data, device="cpu"):
        config = root / f"config-{time.monotonic_ns()}.json"
        config.write_text(json.dumps(trial.config.to_dict()))
        total += _cli(["train", "--config-json", str(config), "--checkpoints", str(root / "direct"), "--no-efficiency"], threads)
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--fraction", type=float, default=0.1)
    args = p.parse_args()
    print(machine(trial=f"keras_cnn, {args.fraction:g} of the training faces, {args.epochs} epochs") + "\n")
    root = Path(tempfile.mkdtemp(prefix="bench-studies-"))
    import ray

    t = time.perf_counter()
    start_ray()
    startup = time.perf_counter() - t
    ray.shutdown()
    print(f"local Ray instance: started in {startup:.1f} s")

    data = str(Path(args.data).resolve())
    threads = torch.get_num_threads()
    for seeds, what in ((1, "one trial"), (3, "three trials one at a time")):
        study = STUDY.format(seeds=seeds, fraction=args.fraction, epochs=args.epochs, concurrent=1)
        direct = timed_direct(study, data, root, 1)  # what a trial gets on Ray: one CPU
        on_ray = timed_study(study, data, root)
        print(
            f"{what}: directly {direct:.1f} s, on Ray {on_ray:.1f} s (Ray's start and stop included): overhead "
            f"{on_ray / direct - 1:+.1%}, {(on_ray - direct) / seeds:.1f} s per trial (target <= 5% on a 2-minute trial)"
        )

    two = STUDY.format(seeds=2, fraction=args.fraction, epochs=args.epochs, concurrent=2)
    sequence = timed_direct(two, data, root, threads)
    together = timed_study(two, data, root)
    print(
        f"two trials: one after the other with {threads} threads {sequence:.1f} s, at once on Ray {together:.1f} s: "
        f"{sequence / together:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
