"""Where the shipped models fail: the robustness suite's time and scores, and label noise from stored predictions.

    python -m bench.failures [--data ../shared/data/fer2013/fer2013.zip] [--severities 1,3,5] [--only resnet18,...]
        [--reference alexnet] [--backend faster|torch|onnxruntime] [--skip-robustness] [--bounds-only]

Robustness: every FER2013 checkpoint on all PrivateTest faces under the suite (fer_core.failures.corruptions),
computed on the backend this machine measured faster for it (measured first where it was not), then read back
from the cache; prints first the least time each model can take on this machine (its MACs over the rate of a
large float32 and bfloat16 matrix product: what no backend can beat; `--bounds-only` stops there), then seconds
per model (computed, and opened from the cache), and the ranking by mCE
against the reference (AlexNet, as Hendrycks & Dietterich normalise) with each model's worst corruption.
Label noise: every checkpoint's stored test predictions against the FER+ crowd (timed for all of them together),
and cleanlab's flags on PrivateTest against "the crowd disagrees with the FER2013 label".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from fer_core.classifier import load_checkpoint
from fer_core.data import find_default_dataset
from fer_core.failures.label_noise import find_crowd_votes, flag_agreement, label_issues, label_noise
from fer_core.failures.robustness import conditions, report, robustness_run
from fer_core.records import CheckpointMeta
from fer_core.store import dataset_for, list_checkpoints, load_predictions

from .harness import machine, timed_ms


def _backend(meta: CheckpointMeta, path: Path, choice: str) -> str:
    if choice != "faster":
        return choice
    from fer_core.backends import faster_backend, measure_backends, speed_file

    if not speed_file(path, meta).is_file():
        measure_backends(path, meta)
    return faster_backend(path, meta)


def gemm_macs_per_s(dtype: torch.dtype, n: int = 2048, runs: int = 10) -> float:
    """Multiply-accumulates per second of a large square matrix product on this machine's threads: about the most
    a network's convolutions can reach here, so MACs / this rate bounds any backend's time from below."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    seconds = min(timed_ms(lambda: a @ b, runs)) / 1000
    return n**3 / seconds


def suite_faces(meta: CheckpointMeta, data_path: str, severities: list[int]) -> int:
    """Faces the suite classifies per model: every test face, clean and under each condition."""
    return (len(conditions(severities=severities)) + 1) * len(dataset_for(meta, data_path).indices(meta.test_split))


def print_bounds(metas: list[tuple[Path, CheckpointMeta]], faces: int) -> None:
    """The least time the suite can take per model at the matrix-product rate of float32 and of bfloat16."""
    rates = {"float32": gemm_macs_per_s(torch.float32), "bfloat16": gemm_macs_per_s(torch.bfloat16)}
    print(f"\nlower bounds for {faces} faces at this machine's matrix-product rate (MACs a face x faces / rate):")
    print("  " + ", ".join(f"{k} {v / 1e9:.0f} GMAC/s" for k, v in rates.items()))
    print(f"{'checkpoint':<42} {'MMACs':>7} " + " ".join(f"{k + ' s':>10}" for k in rates))
    total = 0
    for _, meta in metas:
        if meta.efficiency is None:
            print(f"{meta.id:<42} {'?':>7}  (no MACs recorded)")
            continue
        total += meta.efficiency.macs
        bounds = " ".join(f"{meta.efficiency.macs * faces / r:>10.0f}" for r in rates.values())
        print(f"{meta.id:<42} {meta.efficiency.macs / 1e6:>7.1f} {bounds}")
    print(f"{'all of them':<42} {total / 1e6:>7.1f} " + " ".join(f"{total * faces / r:>10.0f}" for r in rates.values()))


def robustness(
    metas: list[tuple[Path, CheckpointMeta]], data_path: str, severities: list[int], reference: str, backend: str
) -> None:
    keys = conditions(severities=severities)
    print_bounds(metas, suite_faces(metas[0][1], data_path, severities))
    print(f"\nrobustness: {len(keys)} conditions (severities {severities}) + clean, PrivateTest")
    print(f"{'checkpoint':<42} {'backend':<12} {'faces':>6} {'computed s':>10} {'cached s':>9}")
    runs = {}
    for path, meta in metas:
        data = dataset_for(meta, data_path)
        clf = load_checkpoint(path, backend=_backend(meta, path, backend))
        started = time.perf_counter()
        run = robustness_run(clf, data, keys)
        total = time.perf_counter() - started
        started = time.perf_counter()
        runs[meta.id] = robustness_run(clf, data, keys)
        print(f"{meta.id:<42} {clf.backend:<12} {len(run.clean.labels):>6} {total:>10.1f} {time.perf_counter() - started:>9.2f}")
    ref = next((cid for cid, m in ((m.id, m) for _, m in metas) if m.model == reference or cid == reference), None)
    reports = [report(run, runs[ref] if ref else None) for run in runs.values()]
    reports.sort(key=lambda r: r.mce if r.mce is not None else r.mean_corrupted_accuracy)
    print(f"\nranked by mCE against {ref or 'no reference'} (lower is more robust); relative mCE; mean corrupted accuracy")
    print(f"{'checkpoint':<42} {'clean':>7} {'mCE':>6} {'rel mCE':>8} {'corr acc':>9}  worst corruption (mean accuracy)")
    for r in reports:
        worst = next(s for s in r.scores if s.corruption == r.worst)
        mce = f"{r.mce:.3f}" if r.mce is not None else "-"
        rel = f"{r.relative_mce:.3f}" if r.relative_mce is not None else "-"
        print(
            f"{r.checkpoint:<42} {r.clean_accuracy:>7.2%} {mce:>6} {rel:>8} {r.mean_corrupted_accuracy:>9.2%}  "
            f"{r.worst} ({worst.mean_accuracy:.1%})"
        )
    print("\naccuracy per corruption (mean over severities):")
    names = [s.corruption for s in reports[0].scores]
    print(f"{'checkpoint':<26}" + "".join(f"{n[:9]:>10}" for n in names))
    for r in reports:
        print(f"{r.checkpoint[:25]:<26}" + "".join(f"{s.mean_accuracy:>10.1%}" for s in r.scores))


def label_noise_table(metas: list[tuple[Path, CheckpointMeta]], data_path: str) -> None:
    started = time.perf_counter()
    predictions = {meta.id: load_predictions(path, meta) for path, meta in metas}
    crowd = find_crowd_votes(data_path, next(iter(predictions.values())).names)
    noise = {cid: label_noise(cid, p, crowd) for cid, p in predictions.items()}
    rows = [(cid, n, n.counts(), n.crowd_accuracy(), n.agreed_accuracy()) for cid, n in noise.items()]
    seconds = time.perf_counter() - started
    print(
        f"\nlabel noise: {len(rows)} checkpoints from stored predictions in {seconds:.2f} s "
        "(votes read, buckets, two intervals each)"
    )
    print(
        f"{'checkpoint':<42} {'errors':>6} {'crowd=model':>12} {'crowd=label':>11} {'neither':>7} {'no maj.':>7}"
        "  vs crowd  agreed labels"
    )
    for cid, n, c, crowd_acc, agreed in sorted(rows, key=lambda r: -r[3].value):
        print(
            f"{cid:<42} {n.errors:>6} {c['crowd_agrees_with_model']:>5} ({n.crowd_sides_with_model:.0%}) "
            f"{c['crowd_agrees_with_label']:>11} {c['crowd_agrees_with_neither']:>7} {c['no_crowd_majority']:>7}  "
            f"{crowd_acc.value:7.2%}  {agreed.value:.2%} [{agreed.ci.low:.2%}, {agreed.ci.high:.2%}]"
        )
    first = next(iter(noise.values()))
    majority, agreed_faces = first.crowd_accuracy().faces, first.agreed_accuracy().faces
    print(f"faces with a crowd majority: {majority} (+{first.outside_classes} contempt); agreed subset: {agreed_faces}")
    print("\ncleanlab flags (find_label_issues on each model's test probabilities) against 'the crowd disputes the label':")
    for cid, p in predictions.items():
        started = time.perf_counter()
        a = flag_agreement(label_issues(cid, p), crowd, p)
        print(
            f"{cid:<42} flagged {a.flagged:>4}  precision {a.precision:.1%}  recall {a.recall:.1%} of {a.crowd_disagrees} "
            f"disputed (base rate {a.crowd_disagrees / a.faces:.1%})  {time.perf_counter() - started:.2f} s"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(find_default_dataset() or ""))
    parser.add_argument("--checkpoints", default=None)
    parser.add_argument("--severities", default="1,2,3,4,5")
    parser.add_argument("--only", help="comma-separated architectures or checkpoint ids")
    parser.add_argument("--reference", default="alexnet", help="architecture or checkpoint id CE is normalised by")
    parser.add_argument("--backend", choices=["faster", "torch", "onnxruntime"], default="faster")
    parser.add_argument("--skip-robustness", action="store_true")
    parser.add_argument("--bounds-only", action="store_true", help="print the suite's least time per model and stop")
    args = parser.parse_args()
    if not args.data or not Path(args.data).exists():
        print("FER2013 not found: pass --data PATH", file=sys.stderr)
        return 1
    only = set(args.only.split(",")) if args.only else None
    found = [
        (i.path, i.meta) for i in list_checkpoints(Path(args.checkpoints) if args.checkpoints else None) if i.meta is not None
    ]
    fer2013 = [(p, m) for p, m in found if m.data.label_source == "fer2013"]
    chosen = [(p, m) for p, m in fer2013 if only is None or m.model in only or m.id in only or m.model == args.reference]
    severities = [int(s) for s in args.severities.split(",")]
    print(machine())
    if args.bounds_only:
        print_bounds(chosen, suite_faces(chosen[0][1], args.data, severities))
        return 0
    label_noise_table(chosen, args.data)
    if not args.skip_robustness:
        robustness(chosen, args.data, severities, args.reference, args.backend)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
