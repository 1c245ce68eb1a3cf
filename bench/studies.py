"""What running trials on Ray Tune costs, measured in one run (issue #16).

    python -m bench.studies --data ../shared/data/fer2013/fer2013.zip [--epochs 4] [--fraction 0.1]

1. Startup of the local Ray instance (start_ray + shutdown).
2. Overhead: one trial as a one-trial study on Ray against the same TrainConfig trained directly in this process
   with the same single thread (target <= 5% on a 2-minute trial): Ray's start, its worker's start (Python, torch,
   fer_core) and its shutdown, paid once per study run.
3. The same per trial in a study of three trials run one at a time: a worker trains trial after trial (Tune's
   reuse_actors), so what is left is Tune's own per-trial cost.
4. Two trials at once (one CPU each) against the same two trained one after the other with every thread of this
   machine: on two compute-bound cores expect about 1x.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from fer_core.studies.runner import run_study, start_ray
from fer_core.studies.spec import parse_study
from fer_core.training import train_and_save

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


def timed_study(text: str, data: str, root: Path) -> float:
    path = root / f"study-{time.monotonic_ns()}.toml"
    path.write_text(text)
    t = time.perf_counter()
    _, info = run_study(path, parse_study(text, path.name), "bench", data, "cpu", None, root / "ck", root / "runs")
    if info.state != "finished":
        raise RuntimeError(f"the benchmark study ended {info.state}: see {root / 'runs'}")
    return time.perf_counter() - t


def timed_direct(text: str, data: str, root: Path) -> float:
    """Seconds to train a study's trials one after the other in this process (no Ray)."""
    t = time.perf_counter()
    for trial in parse_study(text).trials("bench", data=data, device="cpu"):
        train_and_save(trial.config, root=root / "direct", measure_efficiency=False)
    return time.perf_counter() - t


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
    torch.set_num_threads(1)  # what a trial gets on Ray: one CPU
    for seeds, what in ((1, "one trial"), (3, "three trials one at a time")):
        study = STUDY.format(seeds=seeds, fraction=args.fraction, epochs=args.epochs, concurrent=1)
        direct = timed_direct(study, data, root)
        on_ray = timed_study(study, args.data, root)
        print(
            f"{what}: directly {direct:.1f} s, on Ray {on_ray:.1f} s (Ray's start and stop included): overhead "
            f"{on_ray / direct - 1:+.1%}, {(on_ray - direct) / seeds:.1f} s per trial (target <= 5% on a 2-minute trial)"
        )

    torch.set_num_threads(threads)
    two = STUDY.format(seeds=2, fraction=args.fraction, epochs=args.epochs, concurrent=2)
    sequence = timed_direct(two, data, root)
    together = timed_study(two, args.data, root)
    print(
        f"two trials: one after the other with {threads} threads {sequence:.1f} s, at once on Ray {together:.1f} s: "
        f"{sequence / together:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
