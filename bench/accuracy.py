"""Re-evaluate every shipped checkpoint (and their ensembles) on FER2013 PrivateTest and compare with meta.json.

    python -m bench.accuracy [--data ../shared/data/fer2013/fer2013.zip] [--tta flip|tencrop] [--only resnet18,vgg_fer]
        [--device cuda]

Runs each model on the test faces again (no stored predictions are used), prints accuracy and macro F1
beside the figures stored with the checkpoint; the two agree to the fourth decimal (both come from the
float16 weights as saved, on the CPU; on a GPU or with TTA they may differ by a face or two).
Two ensembles per label source: the mean of every shipped model, and the members chosen greedily on
PublicTest (fer_core.evaluation.select_ensemble) - PrivateTest is only reported, never used to choose.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from fer_core import list_checkpoints, load_checkpoint
from fer_core.data import FerData, find_default_dataset, load_dataset
from fer_core.devices import resolve_device
from fer_core.evaluation import Metrics, compute_metrics, evaluate_ensemble, select_ensemble
from fer_core.records import Predictions, TestMetrics

from .harness import machine


def row(name: str, m: Metrics, stored: TestMetrics | None = None, seconds: float | None = None) -> str:
    """A table line: this run's figures beside those stored in meta.json (they must agree to the 4th decimal)."""
    disgust = m.per_class_accuracy.get("disgust", float("nan"))
    return (
        f"{name:<42} {m.accuracy:>7.4f} {stored.accuracy if stored else float('nan'):>7.4f} {m.macro_f1:>7.4f} "
        f"{stored.macro_f1 if stored else float('nan'):>7.4f} {disgust:>8.4f} "
        + (f"{seconds:>6.1f}" if seconds is not None else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(find_default_dataset() or ""))
    parser.add_argument("--tta", choices=["none", "flip", "tencrop"], default="none")
    parser.add_argument("--checkpoints", default=None)
    parser.add_argument("--only", help="comma-separated architectures or checkpoint ids (ten-crop on a CPU is slow)")
    parser.add_argument(
        "--device", default="cpu", help="cpu (the app's device), auto, cuda or mps: ten-crop on a GPU takes seconds"
    )
    parser.add_argument(
        "--save-probs",
        metavar="FILE.npz",
        help="also write every model's PublicTest and PrivateTest probabilities (for bench/ensemble_rules.py)",
    )
    args = parser.parse_args()
    if not args.data or not Path(args.data).exists():
        print("FER2013 not found: pass --data PATH", file=sys.stderr)
        return 1
    root = Path(args.checkpoints) if args.checkpoints else None
    found = [(i.id, i.meta) for i in list_checkpoints(root) if i.meta is not None]
    if args.only:
        wanted = set(args.only.split(","))
        found = [(cid, meta) for cid, meta in found if cid in wanted or meta.model in wanted]
    device = resolve_device(args.device)
    print(machine(device=device, data=args.data, TTA=args.tta) + "\n")
    header = f"{'checkpoint':<42} {'acc':>7} {'stored':>7} {'F1':>7} {'stored':>7} {'disgust':>8} {'test s':>6}"
    print(header)
    print("-" * len(header))
    datasets: dict[tuple, FerData] = {}
    groups: dict[tuple, dict[str, tuple[Predictions, Predictions]]] = {}
    saved: dict[str, np.ndarray] = {}
    for cid, meta in found:
        key = (meta.data.label_source, meta.classes)
        if key not in datasets:
            datasets[key] = load_dataset(args.data, labels=key[0], classes=list(key[1]))
        clf = load_checkpoint(cid, root, device)
        t = time.perf_counter()
        test = clf.evaluate(datasets[key], "test", args.tta)
        elapsed = time.perf_counter() - t
        val = clf.evaluate(datasets[key], "val", args.tta)
        print(row(cid, compute_metrics(test), meta.test_metrics, elapsed))
        groups.setdefault(key, {})[cid] = (test, val)
        saved |= {
            f"{key[0]}|{cid}|test": test.probs,
            f"{key[0]}|{cid}|val": val.probs,
            f"{key[0]}|labels|test": test.labels,
            f"{key[0]}|labels|val": val.labels,
        }
    for (labels, _), members in groups.items():
        if len(members) < 2:
            continue
        first_val = next(iter(members.values()))[1]
        chosen = select_ensemble({cid: val.probs for cid, (_, val) in members.items()}, first_val.labels)
        for title, ids in [(f"mean of all {len(members)}", list(members)), (f"{len(chosen)} chosen on PublicTest", chosen)]:
            if len(ids) < 2:
                continue
            ensemble = evaluate_ensemble({cid: members[cid][0] for cid in ids})
            print(row(f"ensemble, {title} ({labels})", ensemble.metrics))
        print(f"  chosen: {', '.join(chosen)}")
    if args.save_probs:
        np.savez_compressed(args.save_probs, allow_pickle=False, tta=np.array(args.tta), **saved)
        print(f"\nprobabilities written to {args.save_probs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
