"""`python -m fer_core study run|resume|status|report|validate`: the studies from a terminal; --json everywhere."""

from __future__ import annotations

import argparse
import csv
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cli_output import emit

if TYPE_CHECKING:
    from .report import StudyReport  # statistics: scipy and scikit-learn, only for `report`


def _paths(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    return (Path(args.checkpoints) if args.checkpoints else None), (Path(args.runs) if args.runs else None)


def cmd_validate(args: argparse.Namespace) -> None:
    from .spec import load_study

    rows = []
    for file in args.files:
        spec = load_study(file)
        rows.append(
            {"file": file, "name": spec.name, "trials": {profile: len(spec.trial_ids(profile)) for profile in spec.profiles}}
        )
    emit(args, rows, "\n".join(f"{r['file']}: ok, trials per profile {r['trials']}" for r in rows))


def cmd_run(args: argparse.Namespace) -> None:
    from .runner import run_study
    from .spec import load_study

    spec = load_study(args.file)
    checkpoints, runs = _paths(args)
    study_id, _ = run_study(
        Path(args.file),
        spec,
        args.profile,
        str(args.data),
        args.device,
        args.address,
        checkpoints,
        runs,
        args.storage,
        args.study_id,
    )
    _report(args, study_id, checkpoints, runs)


def cmd_resume(args: argparse.Namespace) -> None:
    from .runner import resume_study

    checkpoints, runs = _paths(args)
    resume_study(args.study_id, checkpoints, runs)
    _report(args, args.study_id, checkpoints, runs)


def cmd_cancel(args: argparse.Namespace) -> None:
    from .runs import cancel_study, cancel_trial

    if args.trial:
        trial = cancel_trial(args.study_id, args.trial, _paths(args)[1])
        text = "cancelled" if trial.state == "cancelled" else "cancel requested: it stops after its current batch"
        emit(args, asdict(trial), f"{args.study_id} trial {trial.trial}: {text}; the other trials go on")
        return
    info = cancel_study(args.study_id, _paths(args)[1])
    text = "cancelled" if info.state == "cancelled" else "cancel requested: its trials stop after their current batch"
    emit(args, asdict(info), f"{info.study_id}: {text}")


def cmd_status(args: argparse.Namespace) -> None:
    from .runs import list_runs, read_trials, study_dir, trial_counts

    _, runs = _paths(args)
    rows = []
    for info in list_runs(runs):
        if args.study_id and info.study_id != args.study_id:
            continue
        trials = read_trials(study_dir(info.study_id, runs))
        rows.append({**asdict(info), "trials": trial_counts(trials)})
    resume = "driver gone: `python -m fer_core study resume {}` trains the rest"
    lines = [
        f"{r['study_id']:<48} {r['state']:<11} {r['trials']}"
        + (f"\n    {r['error'].splitlines()[0]}" if r["error"] else "")  # --json has all of it
        + (f"\n    {resume.format(r['study_id'])}" if r["state"] == "interrupted" else "")
        for r in rows
    ]
    emit(args, rows, "\n".join(lines) or "no studies yet")


def cmd_report(args: argparse.Namespace) -> None:
    checkpoints, runs = _paths(args)
    _report(args, args.study_id, checkpoints, runs)


def _report(args: argparse.Namespace, study_id: str, checkpoints: Path | None, runs: Path | None) -> None:
    from .report import study_report

    report = study_report(study_id, checkpoints, runs)
    if getattr(args, "csv", False):
        print(report_csv(report), end="")
    else:
        emit(args, asdict(report), report_text(report))


def report_text(r: StudyReport) -> str:
    from ..failures.corruptions import HELD_OUT
    from ..failures.robustness import DEFAULT_SEVERITIES
    from .report import point_label, significance, with_interval

    width = max([len(point_label(p.point)) for p in r.points] + [20])
    lines = [
        f"study {r.study_id} ({r.study}, profile {r.profile}); baseline {point_label(r.baseline)}",
        f"{'point':<{width}} {'seeds':>5} {'accuracy':>9} {'± std':>7} {'95% CI':>17} {'macro F1':>9} {'p (Holm)':>9}"
        f" {'agreed labels':>22} {'mCE':>21} {'held-out mCE':>21}",
    ]
    for p in r.points:
        lines.append(
            f"{point_label(p.point):<{width}} {p.seeds:>5} {p.accuracy_mean:>9.4f} {p.accuracy_std:>7.4f} "
            f"[{p.accuracy_ci.low:.4f}, {p.accuracy_ci.high:.4f}] {p.macro_f1_mean:>9.4f} {significance(p):>9}"
            f" {with_interval(p.agreed_accuracy, p.agreed_ci, True):>22} {with_interval(p.mce, p.mce_ci, False):>21}"
            f" {with_interval(p.mce_held_out, p.mce_held_out_ci, False):>21}"
        )
    lines += [f"{s.state} {s.trial} ({point_label(s.point)}) seed {s.seed}: {s.error}" for s in r.failed]
    lines += [f"not finished: {', '.join(r.unfinished)} (python -m fer_core study resume {r.study_id})"] if r.unfinished else []
    lines.append("* significant at 5% after Holm's correction (McNemar on the same test faces, seed-averaged probabilities)")
    lines.append(
        "agreed labels: accuracy on the faces whose FER2013 label is the FER+ majority; mCE against AlexNet, severities "
        f"{', '.join(map(str, DEFAULT_SEVERITIES))}; held-out mCE: over {', '.join(HELD_OUT)} alone (never trained on)"
    )
    lines += [f"note: {r.robustness_note}"] if r.robustness_note else []
    return "\n".join(lines)


def report_csv(r: StudyReport) -> str:
    """One row per trial, with its point's figures beside it."""
    points = {json.dumps(p.point, sort_keys=True): p for p in r.points}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "study_id",
            "trial",
            *r.axes,
            "seed",
            "checkpoint",
            "accuracy",
            "accuracy_ci_low",
            "accuracy_ci_high",
            "macro_f1",
            "point_accuracy_mean",
            "point_accuracy_std",
            "p_value",
            "p_holm",
            "point_agreed_accuracy",
            "point_mce",
            "point_mce_held_out",
            "train_time_s",
            "device",
        ]
    )
    for t in r.trials:
        p = points[json.dumps(t.point, sort_keys=True)]
        writer.writerow(
            [
                r.study_id,
                t.trial,
                *[t.point.get(a) for a in r.axes],
                t.seed,
                t.checkpoint,
                t.accuracy,
                t.accuracy_ci.low,
                t.accuracy_ci.high,
                t.macro_f1,
                p.accuracy_mean,
                p.accuracy_std,
                p.p_value,
                p.p_holm,
                p.agreed_accuracy,
                p.mce,
                p.mce_held_out,
                t.train_time_s,
                t.device,
            ]
        )
    return out.getvalue()


def add_parser(sub: Any) -> None:
    """The `study` command and its actions, on the CLI's subparsers."""
    study = sub.add_parser(
        "study",
        help="run, resume, follow and report studies (studies/*.toml)",
        description="run, resume, follow and report studies (studies/*.toml)",
    )
    actions = study.add_subparsers(dest="action", required=True, parser_class=type(study))

    def action(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--checkpoints", help="checkpoint folder (default: the repository's checkpoints/)")
        p.add_argument("--runs", help="where study runs keep their status (default: runs/studies)")
        p.set_defaults(func=func)
        return p

    p = action("validate", cmd_validate, "check study files without running anything")
    p.add_argument("files", nargs="+")
    p = action("run", cmd_run, "run every trial of a study on Ray Tune, then print its report")
    p.add_argument("file")
    p.add_argument("--profile", default="quick", help="a profile of the file (quick: minutes on a CPU; full: a GPU)")
    p.add_argument("--data", required=True, help="FER2013 as the Kaggle zip or folder, or fer2013.csv")
    p.add_argument("--device", default="auto")
    p.add_argument("--address", help="an existing Ray cluster ('auto' or ray://host:port); default: a local instance")
    p.add_argument("--storage", help="with --address: Ray Tune's storage, a path or URI every node of the cluster reaches")
    p.add_argument("--study-id", help=argparse.SUPPRESS)  # chosen by a background launch (runs.start_study)
    p = action("resume", cmd_resume, "run the trials of an interrupted study that have no checkpoint yet")
    p.add_argument("study_id")
    p = action("cancel", cmd_cancel, "stop a running study (or one trial); its unfinished trials are marked cancelled")
    p.add_argument("study_id")
    p.add_argument("--trial", help="cancel this trial alone (queued or running); the study goes on")
    p = action("status", cmd_status, "studies and their trials' states")
    p.add_argument("study_id", nargs="?")
    p = action("report", cmd_report, "per point and trial: accuracy with 95%% intervals, significance against the baseline")
    p.add_argument("study_id")
    p.add_argument("--csv", action="store_true", help="one row per trial")
