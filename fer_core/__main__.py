"""Command line: `python -m fer_core <command>`; every command takes --help and --json.

Errors are one line on stderr and a non-zero exit: 2 for bad arguments, 1 for a failed operation.

Each command imports what it uses inside its own function, so that a command loads only the heavy libraries it
needs: Ray (studies), ONNX Runtime (export, the onnxruntime backend), captum, cleanlab, timm and kornia stay out of
the commands that do not use them (seconds each on a small CPU).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .atomic import write_text_atomically
from .cli_output import csv_list, emit

if TYPE_CHECKING:
    import torch

    from .data import FerData
    from .records import CheckpointMeta, EpochStats, TestMetrics
    from .training import Callbacks, TrainConfig


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


class CliError(Exception):
    """A failure to report as one line."""


# ---------------------------------------------------------------- models
def cmd_models(args) -> None:
    from .models import NOT_REGISTERED, list_models, spec_parameters

    if args.timm is not None:
        from .models.timm_zoo import timm_names

        names = [n for n in timm_names() if fnmatch.fnmatch(n, args.timm)]
        emit(args, names, "\n".join(f"timm:{n}" for n in names) or f"no timm model matches {args.timm!r}")
        return

    rows: list[dict[str, Any]] = []
    for spec in list_models():
        rows.append(
            {
                "name": spec.name,
                "family": spec.family,
                "input_size": spec.input.size,
                "channels": spec.input.channels,
                "parameters": spec_parameters(spec),
                "reference": spec.reference,
                "gradcam_layer": spec.gradcam_layer,
                "pretrained_available": spec.supports_pretrained,
                "description": spec.description,
            }
        )
    text = "\n".join(
        f"{r['name']:<20} {r['family']:<12} {r['input_size']:>3}px {r['parameters'] / 1e6:6.2f}M  {r['reference']}" for r in rows
    )
    missing = "\n".join(f"not registered: {name}: {why}" for name, why in NOT_REGISTERED.items())
    timm = "any timm model by name: --model timm:<name> (list them: models --timm '*convnext*')"
    emit(args, rows, f"{text}\n\n{missing}\n{timm}")


# ---------------------------------------------------------------- data
def cmd_data(args) -> None:
    from .data import load_dataset, summarize

    data = load_dataset(args.path, labels=args.labels, classes=csv_list(args.classes))
    s = summarize(data)
    lines = [f"{s.source}  ({s.label_source} labels, fingerprint {s.fingerprint})", f"split: {s.split_method}", ""]
    header = f"{'split':<6}" + "".join(f"{c:>10}" for c in s.classes) + f"{'total':>10}"
    lines.append(header)
    for split, counts in s.counts.items():
        lines.append(f"{split:<6}" + "".join(f"{counts[c]:>10}" for c in s.classes) + f"{sum(counts.values()):>10}")
    lines += [
        "",
        "Known flaws (reported, not fixed):",
        f"  exact-duplicate groups: {s.duplicate_groups} ({s.duplicate_extra_copies} extra copies)",
        f"  groups spanning train and val/test (leakage): {s.groups_across_train_and_eval}",
        f"  groups with conflicting labels: {s.groups_with_conflicting_labels}",
        f"  blank images: {s.blank_images}",
    ]
    if s.resized_images:
        lines.append(f"  images not 48x48 on disk (resized): {s.resized_images}")
    emit(args, s.to_dict(), "\n".join(lines))


# ---------------------------------------------------------------- train
def _sized(model: str, input_size: int | None) -> str:
    """--model with --input-size folded into its name, the one place a timm model's size is recorded."""
    from .models import TIMM_PREFIX, timm_name

    if input_size is None:
        return model
    if not model.startswith(TIMM_PREFIX):
        raise CliError(f"--input-size: only timm:<name> models take one; {model} has its own")
    return timm_name(model.removeprefix(TIMM_PREFIX).split("@")[0], input_size)


def _train_config(args):
    from .training import TrainConfig, make_config

    if args.config_json:
        return TrainConfig.from_dict(json.loads(Path(args.config_json).read_text(encoding="utf-8")))
    if not args.model or not args.data:
        raise CliError("train needs --model NAME and --data PATH (or --resume JOB_DIR)")
    pretrained = args.pretrained if args.pretrained not in (None, "imagenet") else (args.pretrained == "imagenet")
    return make_config(
        _sized(args.model, args.input_size),
        args.preset,
        data=str(args.data),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        scheduler=args.scheduler,
        warmup_epochs=args.warmup,
        augment=args.augment,
        balance=args.balance,
        labels=args.labels,
        soft_labels=args.soft_labels or None,
        classes=tuple(csv_list(args.classes) or ()) or None,
        pretrained=pretrained or None,
        freeze_backbone=args.freeze_backbone or None,
        device=args.device,
        seed=args.seed,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        mixup_alpha=args.mixup,
        train_fraction=args.train_fraction,
        early_stopping=args.early_stopping,
        compile=args.compile,
        precision=args.precision,
        time_budget_min=args.time_budget,
        init_from=args.init_from,
        teachers=tuple(csv_list(args.teachers) or ()) or None,
        teacher_weight=args.teacher_weight,
        activation=args.activation,
        norm=args.norm,
        dropout=args.dropout,
        blur_pool=args.blur_pool or None,
    )


def _training_job(args) -> tuple[TrainConfig, Path]:
    """The run's config and job folder: read back from an interrupted run's folder, or made from the flags."""
    from .data import dataset_path
    from .models import get_spec
    from .training import TrainConfig
    from .training.jobs import default_runs_root

    if args.resume:
        job_dir = Path(args.resume)
        if not (job_dir / "config.json").is_file():
            raise CliError(f"{job_dir}: not a training run folder (no config.json)")
        cfg = TrainConfig.from_dict(json.loads((job_dir / "config.json").read_text(encoding="utf-8")))
        dataset_path(cfg.data)
        return cfg, job_dir
    cfg = _train_config(args)
    get_spec(cfg.model)
    dataset_path(cfg.data)  # before a run folder is made or a progress bar drawn
    job_dir = Path(args.job_dir) if args.job_dir else default_runs_root() / f"cli-{cfg.model}-{os.getpid()}"
    job_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(job_dir / "config.json", json.dumps(cfg.to_dict()))
    return cfg, job_dir


def _terminal_progress(cfg: TrainConfig, bar: Any, say: Any) -> Callbacks:
    """What a terminal shows of a run: a progress bar over each epoch's batches, a line per epoch and per stage."""
    from .training import Callbacks
    from .training.jobs import run_position

    def on_batch(epoch: int, batch: int, batches: int, loss: torch.Tensor) -> None:
        if bar is not None:
            if batch == 1:
                bar.reset(total=batches)
                bar.set_description(f"epoch {epoch}")
            bar.update(1)
            if batch % 50 == 0 or batch == batches:  # reading the loss waits for the GPU
                bar.set_postfix(loss=f"{float(loss):.3f}")

    def on_epoch(stats: EpochStats) -> None:
        if say:
            say(
                f"{run_position(cfg, stats.epoch, stats.elapsed_s)}  train loss {stats.train_loss:.4f} acc "
                f"{stats.train_acc:.4f}  val loss {stats.val_loss:.4f} acc {stats.val_acc:.4f}  lr {stats.lr:.2e}  "
                f"{stats.images_per_s:,.0f} img/s  {stats.epoch_time_s:.1f}s{'  *' if stats.best else ''}"
            )

    def on_stage(message: str) -> None:  # minutes of teacher predictions on a CPU would otherwise look like a hang
        if say:
            say(message)

    return Callbacks(on_epoch=on_epoch, on_batch=on_batch, on_stage=on_stage)


def cmd_train(args) -> None:
    from tqdm import tqdm

    from .store import read_meta
    from .training import TrainingCancelled
    from .training.jobs import run_job

    cfg, job_dir = _training_job(args)
    bar = None if args.json or args.job_dir else tqdm(unit="batch", leave=False, dynamic_ncols=True)
    say = (bar.write if bar is not None else print) if not args.json else None
    root = Path(args.checkpoints) if args.checkpoints else None
    try:
        path = run_job(cfg, job_dir, root, _terminal_progress(cfg, bar, say), measure_efficiency=not args.no_efficiency)
    except TrainingCancelled as exc:
        raise CliError(f"training {exc}; no checkpoint written") from None
    finally:
        if bar is not None:
            bar.close()
    meta = read_meta(path)
    m = meta.test_metrics
    emit(
        args,
        {
            "checkpoint": path.name,
            "path": str(path),
            "test_metrics": asdict(m),
            "train_time_s": meta.train_time_s,
            "stop_reason": meta.stop_reason,
        },
        f"checkpoint {path.name} written to {path}\n"
        f"test ({m.n} faces): accuracy {m.accuracy:.4f}  macro F1 {m.macro_f1:.4f}  "
        f"best epoch {meta.best_epoch}/{meta.epochs_run}  train time {meta.train_time_s:.0f}s  "
        f"(ended by: {meta.stop_reason.replace('_', ' ')})",
    )


# ---------------------------------------------------------------- evaluate
def _metrics_text(title: str, m: TestMetrics) -> str:
    lines = [
        title,
        f"  faces {m.n}  accuracy {m.accuracy:.4f}  macro F1 {m.macro_f1:.4f}  weighted F1 {m.weighted_f1:.4f}",
        f"  loss {m.loss:.4f}  top-2 {m.top2_accuracy:.4f}  ECE {m.ece:.4f}  micro AUC {m.micro_auc:.4f}",
        "  per-class accuracy: " + "  ".join(f"{c} {a:.3f}" for c, a in m.per_class_accuracy.items()),
    ]
    return "\n".join(lines)


def _training_data(path: str, meta: CheckpointMeta) -> FerData:
    """The dataset at `path` as the checkpoint saw it; a note when it is not the same data."""
    from .store import dataset_for

    data = dataset_for(meta, path)
    if data.fingerprint != meta.data.fingerprint:
        print(
            f"note: data fingerprint {data.fingerprint} differs from the training data's {meta.data.fingerprint}", file=sys.stderr
        )
    return data


def cmd_evaluate(args) -> None:
    from .classifier import load_checkpoint
    from .evaluation import compute_metrics, evaluate_ensemble
    from .store import load_predictions, read_meta, resolve_checkpoint

    root = Path(args.checkpoints) if args.checkpoints else None
    if args.own_data:
        _evaluate_own_data(args, root)
        return
    if args.ensemble:
        ids = csv_list(args.ensemble) or []
        result = evaluate_ensemble({i: load_predictions(resolve_checkpoint(i, root)) for i in ids})
        m = result.metrics.headline()
        emit(
            args,
            {"ensemble": ids, "split": "test", "metrics": asdict(m)},
            _metrics_text(f"ensemble of {len(ids)}: {', '.join(ids)} (stored test predictions)", m),
        )
        return
    if not args.checkpoint:
        raise CliError("evaluate needs --checkpoint ID|PATH or --ensemble ID,ID,...")
    path = resolve_checkpoint(args.checkpoint, root)
    meta = read_meta(path)
    if args.data is None and args.split == "test" and args.tta == "none":
        predictions, source = load_predictions(path), "stored test predictions"
    else:
        if args.data is None:
            raise CliError("--data PATH is needed for --split val or --tta")
        from .data import DataError

        try:
            data = _training_data(args.data, meta)
        except DataError as exc:
            raise CliError(f"{exc}; to evaluate on a dataset of your own, use --own-data PATH") from exc
        predictions = load_checkpoint(path).evaluate(data, args.split, args.tta)
        source = f"{args.split} split of {args.data}" + (f", TTA {args.tta}" if args.tta != "none" else "")
    m = compute_metrics(predictions).headline()
    emit(
        args,
        {"checkpoint": path.name, "split": args.split, "tta": args.tta, "source": source, "metrics": asdict(m)},
        _metrics_text(f"{path.name} on {source}", m),
    )


def _evaluate_own_data(args, root: Path | None) -> None:
    """Checkpoints (or their ensemble) on a labelled dataset of the user's: every face, the shared classes."""
    from .classifier import load_checkpoint
    from .evaluation import compute_metrics, evaluate_ensemble
    from .external import evaluate_checkpoints, external_root, load_external, parse_mapping
    from .store import list_checkpoints

    ids = csv_list(args.ensemble) or ([args.checkpoint] if args.checkpoint else [i.id for i in list_checkpoints(root) if i.ok])
    data = load_external(Path(args.own_data), parse_mapping(args.map or ""), args.detector, cache=external_root(root))
    summary = data.summary()
    headline, *details = summary.describe()
    lines = [headline, *(f"  {line}" for line in details)]
    evaluated = evaluate_checkpoints(data, ids, lambda cid: load_checkpoint(cid, root), root)
    if evaluated.skipped and (args.ensemble or not evaluated.results):  # nothing, or not the ensemble asked for
        raise CliError("; ".join(evaluated.skipped.values()))
    results = evaluated.results
    out: dict[str, Any] = {"dataset": summary.to_json(), "results": [], "skipped": evaluated.skipped}
    lines += [f"{cid} left out: {reason}" for cid, reason in evaluated.skipped.items()]
    for cid, result in results.items():
        m = compute_metrics(result.predictions).headline()
        classes = list(result.predictions.classes)
        out["results"].append({"checkpoint": cid, "classes": classes, "note": result.note(), "metrics": asdict(m)})
        lines += [_metrics_text(cid, m), f"  ({result.note()})"]
    if args.ensemble:
        ensemble = evaluate_ensemble({cid: r.predictions for cid, r in results.items()}).metrics.headline()
        out["ensemble"] = {"members": ids, "metrics": asdict(ensemble)}
        lines.append(_metrics_text(f"ensemble of {len(ids)}", ensemble))
    emit(args, out, "\n".join(lines))


# ---------------------------------------------------------------- predict
def cmd_predict(args) -> None:
    from .classifier import load_checkpoint
    from .predict import predict_photo
    from .store import list_checkpoints

    root = Path(args.checkpoints) if args.checkpoints else None
    ids = csv_list(args.models) if args.models and not args.all else [c.id for c in list_checkpoints(root) if c.ok]
    if not ids:
        raise CliError("no trained checkpoints found; train one with `python -m fer_core train`")
    if args.backend == "onnxruntime":  # the first use exports each model: seconds each, not a silent wait
        print("ONNX Runtime: a model not yet exported is exported once into the cache and checked first", file=sys.stderr)
    classifiers = [load_checkpoint(i, root, backend=args.backend) for i in ids]
    results = [predict_photo(classifiers, p, detector=args.detector, name=p) for p in args.images]
    if args.json:
        print(json.dumps({"images": [r.to_json() for r in results]}, indent=2))
    else:
        for r in results:
            if r.error:
                print(f"{r.source}: error: {r.error}")
                continue
            print(f"{r.source}: {len(r.faces)} face(s)")
            for n, fp in enumerate(r.faces, 1):
                x, y, w, h = r.box_in_file(fp.face)
                print(f"  face {n} at ({x},{y}) {w}x{h}{'' if fp.face.detected else '  [' + fp.face.note + ']'}")
                for cid, p in fp.predictions.items():
                    print(f"    {cid:<40} {p.label:<9} {p.probabilities[p.label]:.2f}")
                if (ensemble := fp.ensemble()) is not None:
                    verdict = f"ensemble of {len(ensemble.members)}"
                    print(f"    {verdict:<40} {ensemble.label:<9} {ensemble.probabilities[ensemble.label]:.2f}")
    if results and all(r.error for r in results):
        raise SystemExit(1)


# ---------------------------------------------------------------- video
def cmd_video(args) -> None:
    from .classifier import load_checkpoint
    from .failures.robustness import measured_mce
    from .leaderboard import moving_defaults
    from .store import list_checkpoints
    from .video import process_video

    root = Path(args.checkpoints) if args.checkpoints else None
    store = [(c.meta, c.path) for c in list_checkpoints(root) if c.ok and c.meta is not None]
    metas = [meta for meta, _ in store]
    ids = [m.id for m in metas] if args.all else csv_list(args.models)
    chosen_by = ""
    if not ids:
        defaults = moving_defaults(metas, measured_mce(store))
        ids, chosen_by = defaults.ids, f" ({defaults.reason})"
    if not ids:
        raise CliError("no trained checkpoints found; train one with `python -m fer_core train`")
    classifiers = [load_checkpoint(i, root, backend=args.backend) for i in ids]

    def progress(frames: int, fraction: float | None) -> None:
        share = f" ({fraction:.0%} of the video)" if fraction is not None else ""
        print(f"\r{frames} frames processed{share}", end="", file=sys.stderr, flush=True)

    result = process_video(
        args.video, classifiers, args.every, Path(args.out) if args.out else None, args.detector, args.detection_side, progress
    )
    print(file=sys.stderr)
    if args.csv:
        write_text_atomically(Path(args.csv), result.to_csv())
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return
    info = result.info
    print(
        f"{result.source}: {info.width}x{info.height}, {info.duration_s or 0:.1f} s; {len(result.frames)} frames processed "
        f"(every {result.every}), {len({f.number for fr in result.frames for f in fr.faces})} face(s), models: {', '.join(ids)}"
        + chosen_by
    )
    if result.stopped:
        print(f"stopped early: {result.stopped}")
    for share in result.summary():
        print(f"  face {share.face}  {share.model:<40} {share.label:<9} {share.share:6.1%}")
    for path in (args.out, args.csv):
        if path:
            print(f"wrote {path}")


# ---------------------------------------------------------------- export
def cmd_export(args) -> None:
    from .export import SIDECAR, export_checkpoint

    root = Path(args.checkpoints) if args.checkpoints else None
    sidecar = export_checkpoint(args.checkpoint, Path(args.out), args.format, args.quantize, args.data, root)
    p, lines = sidecar.parity, [f"wrote {Path(args.out) / sidecar.file} and its sidecar {SIDECAR} ({sidecar.format})"]
    lines.append(f"parity with PyTorch on {p.faces} {p.source}: max |diff| {p.max_abs_diff:.2e}, same class {p.agreement:.1%}")
    if sidecar.int8:
        q = sidecar.int8
        lines.append(
            f"int8 on {q.test_faces} test faces: {q.int8_accuracy:.2%} (float {q.float_accuracy:.2%}, "
            f"{100 * (q.int8_accuracy - q.float_accuracy):+.2f} points); calibrated on {q.calibration_faces} training faces"
        )
    emit(args, asdict(sidecar), "\n".join(lines))


# ---------------------------------------------------------------- checkpoints
def cmd_checkpoints(args) -> None:
    from .leaderboard import leaderboard_row
    from .store import annotate_checkpoint, list_checkpoints

    root = Path(args.checkpoints) if args.checkpoints else None
    if args.card:
        annotate_checkpoint(args.card[0], root, card=args.card[1])
    if args.measure or args.rederive:
        from .maintenance import rederive, remeasure  # torch: only when the weights are read, not for the listing
    if args.measure:
        remeasure(root)
    if args.rederive:
        for r in rederive(args.rederive, root):
            print(
                f"{r.checkpoint:<44} accuracy {r.before.accuracy:.4f} -> {r.after.accuracy:.4f}  "
                f"macro F1 {r.before.macro_f1:.4f} -> {r.after.macro_f1:.4f}",
                file=sys.stderr,
            )
    rows = [
        {**asdict(leaderboard_row(i.meta)), "error": None} if i.meta else {"id": i.id, "error": i.error}
        for i in list_checkpoints(root)
    ]
    lines = [
        f"{r['id']:<44} ERROR {r['error']}"
        if r["error"]
        else f"{r['id']:<44} {r['architecture']:<16} acc {r['test_accuracy']:.4f}  F1 {r['macro_f1']:.4f}  {r['dataset']}"
        for r in rows
    ]
    emit(args, rows, "\n".join(lines) if lines else "no checkpoints yet; train one with `python -m fer_core train`")


def _command(sub: Any, name: str, func: Any, help_text: str, store: bool = True) -> argparse.ArgumentParser:
    """A subcommand with what every command takes: --json, and --checkpoints where it reads the store."""
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    if store:
        p.add_argument("--checkpoints", help="checkpoint folder (default: the repository's checkpoints/)")
    p.set_defaults(func=func)
    return p


def _add_models_and_data(sub: Any) -> None:
    """`models` and `data`: what can be trained, on what."""
    from .data import LABEL_SOURCES

    p = _command(sub, "models", cmd_models, "list the model registry, or timm's models by name", store=False)
    p.add_argument("--timm", nargs="?", const="*", metavar="PATTERN", help="list timm's architectures matching PATTERN")
    p = _command(sub, "data", cmd_data, "summarise a dataset: counts per split and class, duplicates, blanks", store=False)
    p.add_argument("path", help="Kaggle zip or folder, fer2013.csv, or an ImageFolder root")
    p.add_argument("--labels", choices=LABEL_SOURCES, default="fer2013")
    p.add_argument("--classes", help="comma-separated subset of classes")


def _add_train(sub: Any) -> None:
    """`train`: every TrainConfig field a flag; the recipe of --preset (or the model's) fills the rest."""
    from .data import AUGMENT_PRESETS, LABEL_SOURCES
    from .models import ACTIVATIONS, NORMS
    from .training import BALANCING, COMPILE_MODES, OPTIMIZERS, PRECISIONS, PRESETS, SCHEDULERS

    p = _command(sub, "train", cmd_train, "train a model and write a checkpoint")
    p.add_argument("--model", help="a registered name (see `models`), or timm:<name> for any timm architecture")
    p.add_argument("--input-size", type=int, metavar="PX", help="timm models only: upsample the faces to PX (timm:<name>@PX)")
    p.add_argument("--data")
    p.add_argument("--preset", choices=list(PRESETS))
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--scheduler", choices=SCHEDULERS)
    p.add_argument("--augment", choices=AUGMENT_PRESETS)
    p.add_argument("--balance", choices=BALANCING)
    p.add_argument("--labels", choices=LABEL_SOURCES)
    p.add_argument("--soft-labels", action="store_true", help="FER+ vote distributions as targets")
    p.add_argument("--classes", help="comma-separated subset of classes, e.g. to drop disgust")
    p.add_argument("--pretrained", nargs="?", const="imagenet", help="ImageNet weights (torchvision API) or a local weights file")
    p.add_argument("--freeze-backbone", action="store_true")
    p.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start from this checkpoint's weights (same model and classes): an id in the --checkpoints store, or a folder",
    )
    p.add_argument(
        "--teachers",
        metavar="ID,ID",
        help="distil: train towards these checkpoints' mean prediction mixed with the label (ids in the --checkpoints "
        "store, or folders)",
    )
    p.add_argument("--teacher-weight", type=float, metavar="W", help="share of the teachers in each target (default 0.5)")
    p.add_argument("--activation", choices=ACTIVATIONS, help="custom FER CNNs only (default relu)")
    p.add_argument("--norm", choices=NORMS, help="custom FER CNNs only: batch (default), group or none")
    p.add_argument("--dropout", type=float, help="custom FER CNNs only: every dropout layer's rate")
    p.add_argument(
        "--blur-pool", action="store_true", help="custom FER CNNs only: anti-aliased downsampling (blur before every stride)"
    )
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--mixup", type=float, help="mixup alpha")
    p.add_argument("--early-stopping", type=int, help="patience in epochs")
    p.add_argument(
        "--warmup",
        type=int,
        metavar="EPOCHS",
        help="linear warm-up of the learning rate (default: the recipe's share of its epochs)",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        metavar="MIN",
        help="train for this many wall-clock minutes: cosine schedule over time, --epochs becomes an upper bound; "
        "other work on the machine shortens the run, so runs to compare are given epochs instead",
    )
    p.add_argument(
        "--train-fraction",
        type=float,
        metavar="F",
        help="a stratified share of the training faces (0-1], for a quick first run; validation and test stay whole",
    )
    p.add_argument("--compile", choices=COMPILE_MODES, help="torch.compile mode (default none); reduce-overhead adds CUDA graphs")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="autocast: auto (default) = bf16/fp16 on CUDA, float32 elsewhere; bf16 = on the CPU too (2-3x faster "
        "for plain conv nets on AMX cores, slower for depthwise ones: bench/RESULTS.md)",
    )
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", metavar="JOB_DIR", help="continue an interrupted run from its last finished epoch")
    p.add_argument("--job-dir", help=argparse.SUPPRESS)
    p.add_argument("--config-json", help=argparse.SUPPRESS)
    p.add_argument("--no-efficiency", action="store_true", help="skip the CPU latency measurement after training")


def _add_evaluate(sub: Any) -> None:
    """`evaluate`: a checkpoint, an ensemble, or the user's own labelled data."""
    from .choices import DEFAULT_DETECTOR, DETECTOR_NAMES
    from .input_spec import TTA_MODES

    p = _command(sub, "evaluate", cmd_evaluate, "metrics of a checkpoint or an ensemble")
    p.add_argument("--checkpoint")
    p.add_argument("--ensemble", help="comma-separated checkpoint ids")
    p.add_argument("--data")
    p.add_argument("--split", choices=["val", "test"], default="test")
    p.add_argument("--tta", choices=TTA_MODES, default="none")
    p.add_argument(
        "--own-data",
        metavar="PATH",
        help="a labelled dataset of yours (class folders, a zip of them, or a csv of path,label): every face, judged "
        "on the classes each model shares with it (all checkpoints unless --checkpoint or --ensemble)",
    )
    p.add_argument("--map", help="with --own-data: LABEL=CLASS,... overriding the name aliases (CLASS may be 'ignore')")
    p.add_argument("--detector", choices=DETECTOR_NAMES, default=DEFAULT_DETECTOR, help="with --own-data: for large images")


def _add_predict_and_video(sub: Any) -> None:
    """`predict` and `video`: faces and every model's expression, in photos or a video's frames."""
    from .choices import BACKENDS, DEFAULT_DETECTOR, DETECTOR_NAMES, VIDEO_DETECTION_SIDE

    p = _command(sub, "predict", cmd_predict, "faces and per-model probabilities for images")
    p.add_argument("images", nargs="+")
    p.add_argument("--models", help="comma-separated checkpoint ids")
    p.add_argument("--all", action="store_true", help="every checkpoint (the default)")
    p.add_argument("--detector", choices=DETECTOR_NAMES, default=DEFAULT_DETECTOR)
    p.add_argument("--backend", choices=BACKENDS, default="torch", help="onnxruntime: exported once, parity-checked")

    p = _command(
        sub, "video", cmd_video, "faces, numbered across frames, and each model's expression for every Nth frame of a video"
    )
    p.add_argument("video", help="mp4, webm, mov, avi or mkv (anything FFmpeg decodes)")
    p.add_argument("--models", help="comma-separated checkpoint ids (default: the three fastest of the five most robust by mCE)")
    p.add_argument("--all", action="store_true", help="every checkpoint")
    p.add_argument("--every", type=int, default=1, help="process every Nth frame (default 1: all)")
    p.add_argument("--out", help="write the processed frames, annotated, to this mp4 (H.264)")
    p.add_argument("--csv", help="write one row per frame, face and model (and the ensemble) to this CSV")
    p.add_argument("--detector", choices=DETECTOR_NAMES, default=DEFAULT_DETECTOR)
    p.add_argument(
        "--detection-side", type=int, default=VIDEO_DETECTION_SIDE, help="frames are searched for faces at this size (px)"
    )
    p.add_argument("--backend", choices=BACKENDS, default="torch")


def _add_export_and_checkpoints(sub: Any) -> None:
    """`export` and `checkpoints`: take a model out; list, annotate, re-measure and re-derive the store."""
    from .choices import EXPORT_FORMATS

    p = _command(sub, "export", cmd_export, "a checkpoint as ONNX or TorchScript with a sidecar, parity-checked on real faces")
    p.add_argument("--checkpoint", required=True, help="a checkpoint id in the --checkpoints store, or a folder")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="onnx")
    p.add_argument("--quantize", choices=["int8"], help="static int8 (ONNX), calibrated on training faces")
    p.add_argument("--out", required=True, help="a folder that does not exist yet")
    p.add_argument("--data", help="FER2013 for the parity faces (default: where it usually is, or $FER_DATA)")

    p = _command(sub, "checkpoints", cmd_checkpoints, "list trained checkpoints with key metrics")
    p.add_argument("--card", nargs=2, metavar=("ID", "TEXT"), help="set a checkpoint's model card (shown in the app)")
    p.add_argument("--measure", action="store_true", help="re-measure MACs and CPU speed of every checkpoint on this machine")
    p.add_argument(
        "--rederive",
        metavar="DATA",
        help="recompute every checkpoint's stored test predictions and metrics from its saved weights on this data",
    )


def build_parser() -> argparse.ArgumentParser:
    from .failures.cli import add_parsers as add_failure_parsers
    from .studies.cli import add_parser as add_study_parser

    parser = _Parser(prog="python -m fer_core", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="errors with their traceback (for a bug report)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_models_and_data, _add_train, _add_evaluate, _add_predict_and_video, _add_export_and_checkpoints):
        add(sub)
    add_failure_parsers(sub)
    add_study_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .data import DataError
    from .models import PretrainedUnavailable
    from .store import CheckpointError
    from .studies.spec import StudyError
    from .training import TrainingDiverged
    from .training.jobs import JobBusy

    try:
        args.func(args)
    except (
        CliError,
        DataError,
        CheckpointError,
        PretrainedUnavailable,
        StudyError,
        TrainingDiverged,
        JobBusy,
        ValueError,
        KeyError,
        OSError,
    ) as exc:
        if args.debug:  # a ValueError or OSError from deep inside may be a bug: its traceback says where
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        sys.stderr.write(f"error: {message}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
