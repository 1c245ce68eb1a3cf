"""Inference latency and throughput of the shipped checkpoints, against the naive path measured in the same run.

    python -m bench.inference [--runs 50] [--checkpoints DIR] [--data ../shared/data/fer2013/fer2013.zip]

1. One 1280x720 JPEG with one face (matplotlib's Grace Hopper photo on a plain background), batch 1, on the CPU:
   - ours: `fer_core.predict_photo` - decode, detect the face once, one shared preprocessing, every model in
     inference mode;
   - naive: what a notebook does - per model, decode the photo, detect, crop and resize the face, and run the
     model under `torch.no_grad()`.
   p50 and p95 over --runs runs after 3 warm-ups, and the ratio.
2. Grad-CAM of the predicted class for every shipped model on that face (p50 / p95 of the total).
3. Test-set evaluation throughput (images/s, batch 256) per model, on PrivateTest when the data is there.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fer_core import list_checkpoints, load_checkpoint, predict_photo
from fer_core.data import find_default_dataset, load_dataset, to_model_input
from fer_core.explain import grad_cam
from fer_core.faces import find_faces, load_photo

from .harness import machine, percentiles, sample_photo, timed_ms


def naive_predict(classifiers, photo: bytes) -> list[np.ndarray]:
    results = []
    for clf in classifiers:
        rgb = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
        face = find_faces(rgb)[0].face
        x = to_model_input(torch.from_numpy(face)[None, None], clf.input)
        with torch.no_grad():
            results.append(clf.model(x).softmax(1).numpy()[0])
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--checkpoints", default=None)
    p.add_argument("--data", default=str(find_default_dataset() or ""))
    p.add_argument("--profile", action="store_true", help="print torch.profiler's top operators for one prediction")
    args = p.parse_args()
    root = Path(args.checkpoints) if args.checkpoints else None
    classifiers = [load_checkpoint(i.id, root) for i in list_checkpoints(root) if i.ok]
    photo = sample_photo()
    print(machine(checkpoints=len(classifiers), photo="1280x720 JPEG, one face", runs=f"{args.runs} after 3 warm-ups") + "\n")

    result = predict_photo(classifiers, photo)
    assert result.error is None and len(result.faces) == 1 and result.faces[0].face.detected, "the test face was not found"
    face = result.faces[0].face.face

    same = [
        np.allclose(n, list(result.faces[0].predictions[c.id].probabilities.values()), atol=1e-3)
        for n, c in zip(naive_predict(classifiers, photo), classifiers, strict=True)
    ]
    assert all(same), "naive and fer_core predictions differ"
    ours = timed_ms(lambda: predict_photo(classifiers, photo), args.runs)
    naive = timed_ms(lambda: naive_predict(classifiers, photo), max(5, args.runs // 5))
    parts = {
        "decode": timed_ms(lambda: load_photo(photo), args.runs),
        "detect": timed_ms(lambda: predict_photo([], photo), args.runs),
        "detect_haar": timed_ms(lambda: predict_photo([], photo, detector="haar"), args.runs),
    }
    print(f"{'end-to-end prediction, all models':<44} {'p50 ms':>8} {'p95 ms':>8}")
    for name, samples in [
        ("naive (per-model pipeline)", naive),
        ("fer_core predict_photo", ours),
        ("  of which decode", parts["decode"]),
        ("  of which decode + detect (MTCNN)", parts["detect"]),
        ("  (decode + detect with the Haar cascade)", parts["detect_haar"]),
    ]:
        p50, p95 = percentiles(samples)
        print(f"{name:<44} {p50:>8.1f} {p95:>8.1f}")
    print(f"{'speed-up (naive p50 / ours p50)':<44} {statistics.median(naive) / statistics.median(ours):>8.2f}x\n")
    if args.profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            predict_photo(classifiers, photo)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))

    print(f"{'per model (batch 1, one face)':<48} {'p50 ms':>8} {'Grad-CAM p50':>13}")
    batch1 = np.stack([face])
    model_total = 0.0
    for clf in classifiers:
        fwd = statistics.median(timed_ms(partial(clf.predict_proba, batch1), args.runs))
        model_total += fwd
        cam = statistics.median(timed_ms(partial(grad_cam, clf, face), max(5, args.runs // 5)))
        print(f"{clf.id:<48} {fwd:>8.1f} {cam:>13.1f}")
    cams = timed_ms(lambda: [grad_cam(clf, face) for clf in classifiers], max(5, args.runs // 5))
    p50, p95 = percentiles(cams)
    print(f"{'Grad-CAM, every model':<48} p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    macs = sum(clf.meta.efficiency.macs for clf in classifiers if clf.meta.efficiency)
    print(f"all models: {macs / 1e9:.2f} GMACs per face; at {model_total:.0f} ms that is {macs / model_total / 1e6:.1f} GMAC/s\n")

    if args.data and Path(args.data).exists():
        data = load_dataset(args.data)
        faces, _ = data.take("test")
        what = f"PrivateTest ({len(faces)} faces)"
    else:
        faces = torch.randint(0, 256, (2048, 1, 48, 48), dtype=torch.uint8)
        what = "2,048 random faces (no dataset found)"
    print(f"test-set evaluation throughput, batch 256, {what}")
    for clf in classifiers:
        t = time.perf_counter()
        clf.logits(faces, batch_size=256)
        print(f"  {clf.id:<46} {len(faces) / (time.perf_counter() - t):>8.0f} img/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
