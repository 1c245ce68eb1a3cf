"""Robust fine-tunes against their parents: clean accuracy, mCE (whole suite, seen, held-out), what they look at,
and whether each meets the bar to ship.

    python -m bench.robust_variants --pair CHILD:PARENT [--pair ...] [--checkpoints STORE] [--data FER2013]
        [--figure docs/figures/robust_saliency.png]

Reads what is cached (`python -m fer_core robustness` at severities 1, 3, 5 on PrivateTest; the held-out corruptions
on PublicTest with --split val) and computes the class-average maps where they are missing. Prints per pair:
PublicTest clean accuracy and held-out mCE (what selection may use), PrivateTest clean accuracy with bootstrap
intervals and McNemar against the parent, mCE whole / seen / held-out with intervals, the change of every
corruption's CE, the mean region costs (4x4 occlusion, over classes) of both, the floor (the mCE of a model as
accurate as the parent that no corruption changes: how far any cut can go), and the bar of issue #27: on
PrivateTest, clean accuracy within 1 point of the parent, held-out mCE at least 20% and whole-suite mCE at least 30%
lower. `--figure` draws the class-average Grad-CAM of each pair's parent and child side by side.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from fer_core.classifier import load_checkpoint
from fer_core.data import find_default_dataset
from fer_core.evaluation import accuracy_interval, mcnemar
from fer_core.failures.corruptions import HELD_OUT
from fer_core.failures.robustness import (
    DEFAULT_SEVERITIES,
    RobustnessReport,
    RobustnessRun,
    cached_run,
    cached_runs,
    conditions,
    default_reference,
    mce_interval,
    report,
)
from fer_core.failures.saliency import ClassSaliency, cached_class_saliency, class_saliency
from fer_core.records import CheckpointMeta, Interval
from fer_core.store import dataset_for, list_checkpoints, load_predictions

from .harness import machine

Store = list[tuple[CheckpointMeta, Path]]
CLEAN_POINTS, HELD_OUT_CUT, WHOLE_CUT = 1.0, 0.20, 0.30


def _ci(i: Interval | None, percent: bool = False) -> str:
    if i is None:
        return "n/a"
    return f"[{i.low:.2%}, {i.high:.2%}]" if percent else f"[{i.low:.3f}, {i.high:.3f}]"


def publictest_line(pair: Store, store: Store) -> str:
    """Clean accuracy and held-out mCE on PublicTest, where the --split val runs are cached."""
    keys = conditions(HELD_OUT, DEFAULT_SEVERITIES)
    runs = [cached_run(path, meta, keys, split="val") for meta, path in pair]
    ref_id = default_reference([m for m, _ in store], pair[0][0])
    ref = next(((m, p) for m, p in store if m.id == ref_id), None)
    ref_run = cached_run(ref[1], ref[0], keys, split="val") if ref else None
    if ref_run is None or any(r is None for r in runs):
        return "PublicTest: held-out runs not cached (fer_core robustness --split val --corruptions " + ",".join(HELD_OUT) + ")"
    cells = [f"{r.accuracy():.2%} clean, held-out mCE {report(r, ref_run).mce:.3f}" for r in runs if r is not None]
    return f"PublicTest (selection): child {cells[0]}; parent {cells[1]}"


def compare(child: tuple[CheckpointMeta, Path], parent: tuple[CheckpointMeta, Path], store: Store) -> bool:
    """Print the pair's figures; True when the child meets the bar."""
    cached = cached_runs([child, parent], store)
    if cached.reference is None or cached.missing():
        print(f"not cached yet: fer_core robustness --severities 1,3,5 --checkpoint {','.join(cached.missing())}")
        return False
    print(f"\n### {child[0].id} (robust) against {parent[0].id}\n")
    print(publictest_line([child, parent], store) + "\n")
    preds = {m.id: load_predictions(p, m) for m, p in (child, parent)}
    labels = preds[parent[0].id].labels
    test = mcnemar(preds[child[0].id].predicted, preds[parent[0].id].predicted, labels)
    reports = {cid: report(run, cached.reference) for cid, run in cached.runs.items()}
    print("| PrivateTest | clean accuracy | 95% CI | mCE | 95% CI | seen mCE | held-out mCE | 95% CI |")
    print("|---|---|---|---|---|---|---|---|")
    for meta, _ in (child, parent):
        r, run = reports[meta.id], cached.runs[meta.id]
        correct = preds[meta.id].predicted == labels
        print(
            f"| {meta.id} | {r.clean_accuracy:.2%} | {_ci(accuracy_interval(correct), True)} | {r.mce:.3f} | "
            f"{_ci(mce_interval(run, cached.reference))} | {r.mce_seen:.3f} | {r.mce_held_out:.3f} | "
            f"{_ci(mce_interval(run, cached.reference, held_out=True))} |"
        )
    print(
        f"\nMcNemar on clean PrivateTest: only the child right on {test.only_a_correct} faces, only the parent on "
        f"{test.only_b_correct}; p = {test.p_value:.3g}"
    )
    kid, dad = reports[child[0].id], reports[parent[0].id]
    print_ce_changes(kid, dad)
    print_floor(cached.runs[parent[0].id], cached.reference, dad)
    return verdict(kid, dad)


def print_floor(run: RobustnessRun, reference: RobustnessRun, measured: RobustnessReport) -> None:
    """The mCE of a model as accurate as `run` on clean faces that no corruption changes at all: no training at
    that clean accuracy goes below it, so it says how far the bar's cuts can be reached."""
    unchanged = report(replace(run, predictions={key: run.clean for key in run.predictions}), reference)
    assert unchanged.mce and unchanged.mce_held_out and measured.mce and measured.mce_held_out
    print(
        f"floor at the parent's clean accuracy (every corruption costing nothing): whole mCE {unchanged.mce:.3f} "
        f"({unchanged.mce / measured.mce - 1:+.1%} against the parent), held-out {unchanged.mce_held_out:.3f} "
        f"({unchanged.mce_held_out / measured.mce_held_out - 1:+.1%})"
    )


def print_ce_changes(kid: RobustnessReport, dad: RobustnessReport) -> None:
    before = {s.corruption: s.ce for s in dad.scores}
    cells = [
        f"{s.corruption}{' (held out)' if s.corruption in HELD_OUT else ''} {(s.ce or 0) / (before[s.corruption] or 1) - 1:+.0%}"
        for s in kid.scores
        if s.ce is not None and before.get(s.corruption)
    ]
    print("CE change per corruption: " + ", ".join(cells))


def verdict(kid: RobustnessReport, dad: RobustnessReport) -> bool:
    assert kid.mce and dad.mce and kid.mce_held_out and dad.mce_held_out
    clean = 100 * (dad.clean_accuracy - kid.clean_accuracy)
    held, whole = 1 - kid.mce_held_out / dad.mce_held_out, 1 - kid.mce / dad.mce
    ships = clean <= CLEAN_POINTS and held >= HELD_OUT_CUT and whole >= WHOLE_CUT
    print(
        f"bar: clean {-clean:+.2f} points (>= -{CLEAN_POINTS:g}), held-out mCE {-held:+.1%} (<= -{HELD_OUT_CUT:.0%}), "
        f"whole mCE {-whole:+.1%} (<= -{WHOLE_CUT:.0%}): {'SHIPS' if ships else 'does not ship'}"
    )
    return ships


def saliency(meta: CheckpointMeta, path: Path, data_path: str) -> ClassSaliency:
    found = cached_class_saliency(path, meta)
    return found if found is not None else class_saliency(load_checkpoint(path), dataset_for(meta, data_path))


def print_regions(maps: dict[str, ClassSaliency]) -> None:
    """The mean drop of the true class's probability with each 12-px cell grey, averaged over classes."""
    print("\nRegion costs (4x4 cells, top row = forehead; mean over classes of the true class's probability drop):")
    for cid, m in maps.items():
        grid = m.region_drop.mean(0)
        print(f"{cid}:\n" + "\n".join("  " + " ".join(f"{v:6.3f}" for v in row) for row in grid))


def row_label(meta: CheckpointMeta, robust: bool) -> str:
    """Role, architecture and epochs: two fine-tunes of one parent must not read alike."""
    return f"{'robust' if robust else 'parent'} {meta.model}\n{meta.epochs_run} epochs"


def draw(pairs: list[tuple[str, str]], maps: dict[str, ClassSaliency], labels: dict[str, str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [cid for pair in pairs for cid in (pair[1], pair[0])]
    classes = maps[rows[0]].classes
    fig, axes = plt.subplots(len(rows), len(classes), figsize=(1.6 * len(classes), 1.8 * len(rows)), squeeze=False)
    for r, cid in enumerate(rows):
        m = maps[cid]
        for c, name in enumerate(classes):
            ax = axes[r][c]
            ax.imshow(m.mean_faces[c], cmap="gray")
            ax.imshow(np.nan_to_num(m.correct_maps[c]), cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0:
                ax.set_ylabel(labels[cid], fontsize=8)
    fig.suptitle("Mean Grad-CAM over correctly classified PrivateTest faces, per class", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"\nfigure: {out}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pair", action="append", required=True, metavar="CHILD:PARENT")
    p.add_argument("--checkpoints", default=None)
    p.add_argument("--data", default=str(find_default_dataset() or ""))
    p.add_argument("--figure", type=Path)
    args = p.parse_args()
    store = [(i.meta, i.path) for i in list_checkpoints(Path(args.checkpoints) if args.checkpoints else None) if i.meta]
    by_id = {meta.id: (meta, path) for meta, path in store}
    pairs = [(child, parent) for child, _, parent in (pair.partition(":") for pair in args.pair)]
    unknown = [cid for pair in pairs for cid in pair if cid not in by_id]
    if unknown:
        print(f"not in the store: {', '.join(unknown)}", file=sys.stderr)
        return 1
    print(machine())
    verdicts = {child: compare(by_id[child], by_id[parent], store) for child, parent in pairs}
    maps = {cid: saliency(*by_id[cid], args.data) for pair in pairs for cid in pair}
    print_regions(maps)
    if args.figure:
        children = {child for child, _ in pairs}
        draw(pairs, maps, {cid: row_label(by_id[cid][0], cid in children) for cid in maps}, args.figure)
    print("\nships: " + (", ".join(c for c, ok in verdicts.items() if ok) or "none"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
