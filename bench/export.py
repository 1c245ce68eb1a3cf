"""PyTorch (as the app runs it) against ONNX Runtime float32 and int8, per shipped checkpoint, in one run (issue #19).

    python -m bench.export --data ../shared/data/fer2013/fer2013.zip [--models ID,ID] [--runs 200]

Each checkpoint is exported twice (float32, static int8) with fer_core.export, parity-checked as every export is.
All three run behind the same FerClassifier call (predict_proba on uint8 faces), so the figures include the same
preprocessing: batch 1 (one face, what Predict does per face) and batch 256 (evaluation), latency p50 and faces/s,
and PrivateTest accuracy of each format. Targets: ONNX Runtime >= 1.5x PyTorch's batch-1 speed on the small models;
int8 within 0.5 points of float accuracy.
"""

from __future__ import annotations

import argparse
import tempfile
from functools import partial
from pathlib import Path

from fer_core.classifier import FerClassifier, load_checkpoint
from fer_core.export import OrtModule, export_checkpoint
from fer_core.store import dataset_for, list_checkpoints

from .harness import machine, percentiles, timed_ms


def _formats(cid: str, data: str, tmp: Path) -> tuple[dict[str, FerClassifier], float]:
    """PyTorch, ONNX Runtime float32 and int8 classifiers of one checkpoint, and the float export's parity."""
    torch_clf = load_checkpoint(cid)
    (tmp / cid).mkdir()
    exported = export_checkpoint(cid, tmp / cid / "float", data=data)
    export_checkpoint(cid, tmp / cid / "int8", quantize="int8", data=data)
    formats = {"torch": torch_clf}
    for name in ("float", "int8"):
        formats[f"ort-{name}"] = FerClassifier(
            OrtModule(tmp / cid / name / "model.onnx"), torch_clf.meta, torch_clf.path, "onnxruntime"
        )
    return formats, exported.parity.max_abs_diff


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--models", help="comma-separated checkpoint ids (default: every shipped checkpoint)")
    p.add_argument("--runs", type=int, default=200, help="timed batch-1 calls per format (batch 256: a tenth)")
    args = p.parse_args()
    print(machine() + "\n")
    ids = args.models.split(",") if args.models else [c.id for c in list_checkpoints() if c.ok]
    tmp = Path(tempfile.mkdtemp(prefix="bench-export-"))
    print(
        "| checkpoint | parity max abs diff | batch 1 p50 ms: torch / ORT / int8 (ORT speed-up) "
        "| batch 256 faces/s: torch / ORT / int8 | PrivateTest accuracy: torch / ORT / int8 (int8 change) |"
    )
    print("|---|---|---|---|---|")
    for cid in ids:
        formats, parity = _formats(cid, args.data, tmp)
        faces, labels = dataset_for(formats["torch"].meta, args.data).take("test")
        one, batch = faces[:1, 0].numpy(), faces[:256, 0].numpy()
        p50 = {k: percentiles(timed_ms(partial(c.predict_proba, one), args.runs))[0] for k, c in formats.items()}
        rate = {
            k: 256 / (percentiles(timed_ms(partial(c.predict_proba, batch), max(args.runs // 10, 3)))[0] / 1000)
            for k, c in formats.items()
        }
        acc = {k: float((c.predict_proba(faces[:, 0].numpy()).argmax(1) == labels.numpy()).mean()) for k, c in formats.items()}
        print(
            f"| {cid} | {parity:.1e} "
            f"| {p50['torch']:.2f} / {p50['ort-float']:.2f} / {p50['ort-int8']:.2f} ({p50['torch'] / p50['ort-float']:.2f}x) "
            f"| {rate['torch']:.0f} / {rate['ort-float']:.0f} / {rate['ort-int8']:.0f} "
            f"| {acc['torch']:.2%} / {acc['ort-float']:.2%} / {acc['ort-int8']:.2%} "
            f"({100 * (acc['ort-int8'] - acc['ort-float']):+.2f} points) |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
