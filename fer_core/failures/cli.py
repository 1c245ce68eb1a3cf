"""`python -m fer_core label-noise` and `python -m fer_core robustness`: where and why models fail, from a
terminal; --json like every command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..cli_output import csv_list, emit


def _store(args: argparse.Namespace) -> Path | None:
    return Path(args.checkpoints) if args.checkpoints else None


def _data_path(args: argparse.Namespace) -> str | None:
    from ..data import find_default_dataset

    found = args.data or find_default_dataset()
    return str(found) if found else None


def _chosen(args: argparse.Namespace, label_source: str | None = None) -> tuple[list[str], list[str]]:
    """The single checkpoints and the ensemble's members asked for: an ensemble's members one by one when no
    --checkpoint is given, every checkpoint (of `label_source`) when neither is."""
    from ..store import list_checkpoints

    singles, members = csv_list(args.checkpoint) or [], csv_list(args.ensemble) or []
    if not singles:
        singles = members or [
            i.id for i in list_checkpoints(_store(args)) if i.meta and label_source in (None, i.meta.data.label_source)
        ]
    if not singles:
        which = f" trained on {label_source} labels" if label_source else ""
        raise ValueError(f"no checkpoint{which} in the store; train one with `python -m fer_core train`")
    return singles, members


# ---------------------------------------------------------------- label-noise


def cmd_label_noise(args: argparse.Namespace) -> None:
    from ..evaluation import evaluate_ensemble
    from ..store import load_predictions, read_meta, resolve_checkpoint
    from .label_noise import BUCKET_LABELS, BUCKET_SHORT, find_crowd_votes, flag_agreement, label_issues, label_noise

    singles, members = _chosen(args, "fer2013")
    stored = {}
    for cid in dict.fromkeys(singles + members):
        path = resolve_checkpoint(cid, _store(args))
        meta = read_meta(path)
        if meta.data.label_source != "fer2013":
            raise ValueError(f"{cid} was trained on {meta.data.label_source} labels: label noise judges FER2013 labels")
        stored[cid] = load_predictions(path, meta)
    subjects = {cid: stored[cid] for cid in singles}
    if members:
        subjects[f"ensemble of {', '.join(members)}"] = evaluate_ensemble({m: stored[m] for m in members}).predictions
    crowd = find_crowd_votes(_data_path(args), next(iter(subjects.values())).names)
    rows: list[dict[str, Any]] = []
    lines = [
        f"{'model':<44} {'faces':>6} {'errors':>6} " + " ".join(f"{h:>12}" for h in BUCKET_SHORT.values()) + "  vs crowd  agreed"
    ]
    for cid, predictions in subjects.items():
        noise = label_noise(cid, predictions, crowd)
        agreement = flag_agreement(label_issues(cid, predictions), crowd, predictions)
        row = noise.to_json() | {"cleanlab": vars(agreement)}
        rows.append(row)
        crowd_acc, agreed = noise.crowd_accuracy(), noise.agreed_accuracy()
        lines.append(
            f"{cid[:44]:<44} {noise.faces:>6} {noise.errors:>6} "
            + " ".join(f"{row[b]:>12}" for b in BUCKET_SHORT)
            + f"  {crowd_acc.value:7.2%}  {agreed.value:6.2%} [{agreed.ci.low:.2%}, {agreed.ci.high:.2%}]"
        )
        lines.append(
            f"{'':<44} cleanlab flags {agreement.flagged} faces: {agreement.precision:.0%} of them the crowd also disputes, "
            f"{agreement.recall:.0%} of the {agreement.crowd_disagrees} disputed faces found"
        )
    lines.append("buckets: " + "; ".join(f"{BUCKET_SHORT[b]}: {text}" for b, text in BUCKET_LABELS.items()))
    emit(args, {"models": rows}, "\n".join(lines))


# ---------------------------------------------------------------- robustness
def cmd_robustness(args: argparse.Namespace) -> None:
    from ..data import DataError
    from ..store import list_checkpoints
    from .robustness import checkpoint_run, conditions, default_reference, ensemble_run, report

    keys = conditions(csv_list(args.corruptions), [int(s) for s in csv_list(args.severities) or []] or None)
    singles, members = _chosen(args)
    data_path = _data_path(args)
    if data_path is None:
        raise DataError("FER2013 not found: pass --data PATH (or set FER_DATA)")
    metas = [i.meta for i in list_checkpoints(_store(args)) if i.meta is not None]
    reference = args.reference
    if reference is None:
        first = next((m for m in metas if m.id == singles[0]), None)
        reference = default_reference(metas, first) if first else None
    runs = {}
    for cid in dict.fromkeys([*singles, *members, *([reference] if reference and reference != "none" else [])]):
        runs[cid] = checkpoint_run(cid, data_path, keys, _store(args), args.backend, _progress(cid, args.json), args.split)
    ref_run = runs.get(reference) if reference and reference != "none" else None
    subjects = [runs[cid] for cid in singles]
    if members:
        subjects.append(ensemble_run([runs[m] for m in members]))
    reports = [report(run, ref_run) for run in subjects]
    emit(args, {"reference": reference, "conditions": keys, "models": [r.to_json() for r in reports]}, _robustness_text(reports))


def _progress(cid: str, quiet: bool) -> Any:
    def say(done: int, total: int, what: str) -> None:
        if not quiet and total:
            end = "\n" if done == total else ""
            print(f"\r{cid}: {done}/{total} conditions computed ({what})   ", end=end, file=sys.stderr, flush=True)

    return say


def _robustness_text(reports: list[Any]) -> str:
    lines = []
    for r in reports:
        mce = f"mCE {r.mce:.3f}" if r.mce is not None else f"no mCE ({r.reference_note})"
        parts = ", ".join(f"{what} {v:.3f}" for what, v in (("seen", r.mce_seen), ("held-out", r.mce_held_out)) if v is not None)
        mce += f" ({parts})" if parts else ""
        rel = f", relative mCE {r.relative_mce:.3f}" if r.relative_mce is not None else ""
        lines.append(f"{r.checkpoint}: clean {r.clean_accuracy:.2%}, {mce}{rel}, worst: {r.worst}")
        for s in r.scores:
            ce = f"  CE {s.ce:.3f}" if s.ce is not None else ""
            lines.append(f"  {s.corruption:<16} " + "  ".join(f"s{k} {v:6.2%}" for k, v in s.accuracy.items()) + ce)
    return "\n".join(lines)


def add_parsers(sub: Any) -> None:
    """The `label-noise` and `robustness` commands, on the CLI's subparsers."""

    def command(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--checkpoint", help="checkpoint ids, comma-separated (default: every one that fits)")
        p.add_argument("--ensemble", metavar="ID,ID", help="also the mean-probability ensemble of these checkpoints")
        p.add_argument("--data", help="FER2013 (default: where it usually is, or $FER_DATA)")
        p.add_argument("--checkpoints", help="checkpoint folder (default: the repository's checkpoints/)")
        p.set_defaults(func=func)
        return p

    command(
        "label-noise",
        cmd_label_noise,
        "each model's test errors against the FER+ crowd's votes (buckets, accuracy against the crowd and on the faces "
        "both agree on), and cleanlab's label-issue flags measured against the crowd",
    )
    p = command(
        "robustness",
        cmd_robustness,
        "accuracy on test faces under the corruption suite (noise, blur, JPEG, low resolution, light, occlusion, "
        "misalignment; flip as a control), CE and mCE against a reference; cached in $FER_CACHE_DIR",
    )
    p.add_argument("--corruptions", help="comma-separated names (default: the whole suite)")
    p.add_argument("--severities", help="comma-separated, 1-5 (default: all five)")
    p.add_argument("--reference", help="checkpoint id CE is normalised by (default: the AlexNet checkpoint; 'none')")
    p.add_argument("--backend", choices=["faster", "torch", "onnxruntime"], default="faster")
    p.add_argument(
        "--split",
        choices=["val", "test"],
        help="the faces to corrupt: test (PrivateTest, default) or val (PublicTest: to select models without the test)",
    )
