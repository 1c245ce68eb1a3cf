"""Re-evaluate every shipped checkpoint (and their ensembles) on FER2013 PrivateTest and compare with meta.json.

    python bench/accuracy.py [--data ../shared/data/fer2013/fer2013.zip] [--tta flip|tencrop] [--only resnet18,vgg_fer]
        [--device cuda]

Runs each model on the test faces again (no stored predictions are used), prints accuracy and macro F1
beside the figures stored at training time; the two must agree up to float16 weight rounding.
Two ensembles per label source: the mean of every shipped model, and the members chosen greedily on
PublicTest (fer_core.evaluation.select_ensemble) - PrivateTest is only reported, never used to choose.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_core import list_checkpoints, load_checkpoint  # noqa: E402
from fer_core.data import find_default_dataset, load_dataset  # noqa: E402
from fer_core.devices import resolve_device  # noqa: E402
from fer_core.evaluation import compute_metrics, ensemble_probs, select_ensemble  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(find_default_dataset() or ""))
    parser.add_argument("--tta", choices=["none", "flip", "tencrop"], default="none")
    parser.add_argument("--checkpoints", default=None)
    parser.add_argument("--only", help="comma-separated architectures or checkpoint ids (ten-crop on a CPU is slow)")
    parser.add_argument("--device", default="cpu", help="cpu (the app's device), auto, cuda or mps: ten-crop on a GPU takes seconds")
    parser.add_argument("--save-probs", metavar="FILE.npz",
                        help="also write every model's PublicTest and PrivateTest probabilities (for bench/ensemble_rules.py)")
    args = parser.parse_args()
    if not args.data or not Path(args.data).exists():
        print("FER2013 not found: pass --data PATH", file=sys.stderr)
        return 1
    root = Path(args.checkpoints) if args.checkpoints else None
    infos = [i for i in list_checkpoints(root) if i.ok]
    if args.only:
        wanted = set(args.only.split(","))
        infos = [i for i in infos if i.id in wanted or i.meta["model"] in wanted]
    device = resolve_device(args.device)
    print(f"machine: {platform.platform()}, {torch.get_num_threads()} threads, {device}; data {args.data}; TTA {args.tta}\n")
    header = f"{'checkpoint':<42} {'acc':>7} {'stored':>7} {'F1':>7} {'stored':>7} {'disgust':>8} {'test s':>6}"
    print(header)
    print("-" * len(header))
    datasets: dict[tuple, object] = {}
    groups: dict[tuple, list] = {}
    saved: dict[str, np.ndarray] = {}
    for info in infos:
        meta = info.meta
        key = (meta["data"]["label_source"], tuple(meta["classes"]))
        if key not in datasets:
            datasets[key] = load_dataset(args.data, labels=key[0], classes=list(key[1]))
        data = datasets[key]
        clf = load_checkpoint(info.id, root, device)
        t = time.perf_counter()
        probs, labels = clf.evaluate(data, "test", args.tta)
        elapsed = time.perf_counter() - t
        val_probs, val_labels = clf.evaluate(data, "val", args.tta)
        m = compute_metrics(probs, labels, data.classes)
        stored = meta["test_metrics"]
        disgust = m["per_class_accuracy"].get("disgust", float("nan"))
        print(f"{info.id:<42} {m['accuracy']:>7.4f} {stored['accuracy']:>7.4f} {m['macro_f1']:>7.4f} "
              f"{stored['macro_f1']:>7.4f} {disgust:>8.4f} {elapsed:>6.1f}")
        groups.setdefault(key, []).append((info.id, probs, labels, val_probs, val_labels))
        saved |= {f"{key[0]}|{info.id}|test": probs, f"{key[0]}|{info.id}|val": val_probs,
                  f"{key[0]}|labels|test": labels, f"{key[0]}|labels|val": val_labels}
    for key, members in groups.items():
        if len(members) < 2:
            continue
        test = {cid: p for cid, p, _, _, _ in members}
        chosen = select_ensemble({cid: vp for cid, _, _, vp, _ in members}, members[0][4])
        for title, ids in [(f"mean of all {len(members)}", list(test)), (f"{len(chosen)} chosen on PublicTest", chosen)]:
            m = compute_metrics(ensemble_probs([test[c] for c in ids]), members[0][2], list(key[1]))
            print(f"{'ensemble, ' + title + ' (' + key[0] + ')':<42} {m['accuracy']:>7.4f} {'':>7} "
                  f"{m['macro_f1']:>7.4f} {'':>7} {m['per_class_accuracy'].get('disgust', np.nan):>8.4f}")
        print(f"  chosen: {', '.join(chosen)}")
    if args.save_probs:
        np.savez_compressed(args.save_probs, tta=np.array(args.tta), **saved)
        print(f"\nprobabilities written to {args.save_probs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
