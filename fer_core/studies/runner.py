"""Run a study's trials on Ray Tune: a local Ray instance on this machine by default, an existing cluster with
`address`. The only module that imports ray.

Ray Tune schedules the trials on the CPUs and GPUs it finds (several small trials share a GPU through a fractional
GPU resource). Each trial is one ordinary `train_and_save` run that writes an ordinary checkpoint (atomically,
with the study recorded in its meta.json) and its own status file; a trial that raises or diverges is recorded as
failed with its reason and the study goes on. Resuming a study reruns only the trials without a checkpoint.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import math
import os
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data.choices import dataset_path
from ..records import EpochStats, StudyTrial
from ..repository import REPO
from ..store import CheckpointExists, checkpoint_dir, default_root, read_meta
from ..training.jobs import DeviceHolder, acquire_device, release_device
from .runs import (
    UNFINISHED,
    RunInfo,
    TrialStatus,
    cancel_requested,
    new_study_id,
    now,
    prepare_run_dir,
    read_run,
    read_spec,
    read_trials,
    record_cancelled,
    study_dir,
    trial_cancel_requested,
    trial_cancelled_alone,
    write_run,
    write_trial,
)
from .spec import Range, StudyError, StudySpec

if TYPE_CHECKING:
    from ..training import Callbacks

TOKEN_HINT = (
    " A cluster started with `ray start` (Ray 2.59 and later) asks for its token: set RAY_AUTH_MODE=token, with the"
    " head node's ~/.ray/auth_token on this machine or its content in RAY_AUTH_TOKEN"
)


def start_ray(address: str | None = None) -> bool:
    """A local instance bound to 127.0.0.1 with no dashboard, or a connection to `address` ("auto", "ray://...");
    False when this process is already connected (then whoever connected it shuts it down)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # local Ray listens on loopback only
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if address:
        _check_reachable(address)
    if ray.is_initialized():
        connected = ray.get_runtime_context().gcs_address
        if address and ":" in address and not address.endswith(connected):
            raise StudyError(f"--address {address}: this process is already connected to Ray at {connected}")
        return False
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}}
    with contextlib.redirect_stdout(sys.stderr):
        if address:
            try:
                ray.init(address=address, runtime_env=env, log_to_driver=False, configure_logging=False)
            except ConnectionError as exc:
                token = "" if "Could not find" in str(exc) else TOKEN_HINT
                raise StudyError(f"--address {address}: {str(exc).rstrip('.')}.{token}") from None
        else:
            ray.init(include_dashboard=False, runtime_env=env, log_to_driver=False, configure_logging=False)
    return True


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes, when nothing listens at a host:port address (ray.init retries for long)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto": Ray finds the cluster started on this machine, or says there is none
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise StudyError(
            f"--address {address}: nothing answers there ({exc}); is the head started (`ray start --head`)?"
        ) from None


def _run_trial_then_release(config: dict[str, Any]) -> None:
    """A reused worker trains trial after trial: what a trial freed goes back to the system before the next one.
    Without it glibc kept the freed heap: the two workers of the architectures study held 9 and 11 GB after a dozen
    trials (ResNet-101 and ResNet-50 V2 running, which take 4-5 GB in a fresh worker), and Ray's memory monitor
    killed one on a 24 GB machine, failing the run; with it they fell back to 2.2-2.6 GB between trials."""
    try:
        _run_trial(config)
    finally:
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):  # glibc's malloc_trim: Linux only
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _run_trial(config: dict[str, Any]) -> None:
    """One trial inside a Ray worker: train, write the checkpoint, keep the trial's status file current."""
    from ray import tune

    from ..training import TrainingCancelled, train_and_save
    from ..training.errors import describe_failure

    run = config["run"]
    directory, root = Path(run["dir"]), Path(run["checkpoints"])
    spec = read_spec(directory)
    if "trial" in config:  # grid or random: the trial was fixed before the run
        trial_id, point, seed = config["trial"]["id"], config["trial"]["point"], config["trial"]["seed"]
    else:  # TPE: the point Optuna chose, under the name _trial_name gave it
        trial_id, point, seed = tune.get_context().get_trial_name(), _decode(spec, config["point"]), 0
    trial = spec.trial(trial_id, point, seed, run["profile"], run["data"], run["device"])
    study = StudyTrial(
        study_id=run["study_id"], study=spec.name, profile=run["profile"], trial=trial.id, point=trial.point, seed=trial.seed
    )
    status = TrialStatus(trial.id, "running", trial.point, trial.seed)
    checkpoint_id = _checkpoint_id(run["study_id"], trial.id)
    if _saved(checkpoint_id, root):  # finished by a worker of a killed driver after the resume listed it
        write_trial(directory, replace(status, state="done", checkpoint=checkpoint_id))
        return
    if trial_cancel_requested(directory, trial.id):
        write_trial(directory, replace(status, state="cancelled"))
        return
    reporter = _TrialReporter(directory, status, _Objective(trial.config.select_by))
    try:
        path = train_and_save(
            trial.config,
            root=root,
            callbacks=reporter.callbacks(),
            measure_efficiency=False,
            study=study,
            checkpoint_id=checkpoint_id,
        )
    except CheckpointExists:  # a killed driver's worker outlived it and saved this trial first: its result stands
        reporter.write(state="done", checkpoint=checkpoint_id)
        return
    except TrainingCancelled:
        reporter.write(state="cancelled")
        return
    except SystemExit:  # how Tune ends a trial its scheduler stops (ASHA), from inside tune.report
        reporter.write(state="stopped", error=f"stopped by ASHA after epoch {reporter.status.epoch}")
        raise
    except BaseException as exc:
        reporter.write(state="failed", error=describe_failure(exc))
        raise
    reporter.write(state="done", checkpoint=path.name, stage="")


class _TrialReporter:
    """Inside a trial's worker: keeps the trial's status file current, reports each epoch to Tune (with the
    objective its search and scheduler compare) and watches for the trial's cancel flag."""

    def __init__(self, directory: Path, status: TrialStatus, objective: _Objective) -> None:
        self.directory, self.status, self.objective = directory, status, objective
        self._last_batch_write = 0.0
        write_trial(directory, status)

    def write(self, **changes: Any) -> None:
        self.status = replace(self.status, **changes)
        write_trial(self.directory, self.status)

    def on_batch(self, epoch: int, batch: int, batches: int, loss: object) -> None:
        if time.monotonic() - self._last_batch_write >= BATCH_REPORT_S or batch == batches:
            self._last_batch_write = time.monotonic()
            self.write(batch=batch, batches=batches, stage="")

    def on_stage(self, message: str) -> None:
        self.write(stage=message)

    def on_epoch(self, stats: EpochStats) -> None:
        from ray import tune

        self.write(epoch=stats.epoch, val_acc=stats.val_acc, batch=0)
        report = {"epoch": stats.epoch, "val_acc": stats.val_acc, "val_loss": stats.val_loss}
        tune.report(report | {OBJECTIVE: self.objective(stats)})

    def callbacks(self) -> Callbacks:
        from ..training import Callbacks

        return Callbacks(
            on_epoch=self.on_epoch,
            on_batch=self.on_batch,
            on_stage=self.on_stage,
            should_stop=lambda: trial_cancel_requested(self.directory, self.status.trial),
        )


BATCH_REPORT_S = 2.0  # how often a running trial rewrites its batch progress
OBJECTIVE = "objective"  # what a TPE search maximises: the best validation accuracy so far (or -the lowest loss)


class _Objective:
    """The checkpoint's own selection rule as one number to maximise: the best epoch's value so far."""

    def __init__(self, select_by: str) -> None:
        self.select_by, self.best = select_by, -math.inf

    def __call__(self, stats: EpochStats) -> float:
        value = -stats.val_loss if self.select_by == "val_loss" else stats.val_acc
        self.best = max(self.best, value)
        return self.best


def _trial_name(trial: Any) -> str:
    """Ray's name for a trial: the study's trial id (Ray would spell out the whole config). A TPE search's trials
    take the run's pending ids in the order Tune creates them (its experiment tag starts with that count)."""
    config = trial.config
    if "trial" in config:
        return str(config["trial"]["id"])
    return str(config["run"]["ids"][int(trial.experiment_tag.split("_")[0]) - 1])


def _checkpoint_id(study_id: str, trial_id: str) -> str:
    return f"{study_id}-{trial_id}"


def _saved(checkpoint_id: str, root: Path) -> bool:
    return (checkpoint_dir(checkpoint_id, root) / "meta.json").is_file()


def _pending(study_id: str, trial_ids: list[str], root: Path, directory: Path) -> list[str]:
    """Trials without a checkpoint in the store that ASHA did not stop and the user did not cancel alone: what a
    (resumed) run still has to train."""
    statuses = read_trials(directory)
    return [
        i
        for i in trial_ids
        if not _saved(_checkpoint_id(study_id, i), root)
        and (statuses.get(i) is None or statuses[i].state != "stopped")
        and not trial_cancelled_alone(directory, i)
    ]


def _gpus_per_trial() -> float:
    import ray

    return 0.25 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def _scheduler(spec: StudySpec, profile: str) -> Any:
    """ASHA on the metric the trials select on, when the study asks for early stopping; else Tune's FIFO."""
    if spec.early_stop != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    cfg = spec.trial("baseline", spec.baseline, 0, profile).config  # every trial of a profile has its budget
    metric, mode = ("val_loss", "min") if cfg.select_by == "val_loss" else ("val_acc", "max")
    # max_t beyond the last epoch: Tune stops a trial that reaches max_t at its last report, before it saves
    epochs = cfg.epochs + 1
    return ASHAScheduler(metric=metric, mode=mode, max_t=epochs, grace_period=spec.grace_of(profile), reduction_factor=2)


def _tpe(spec: StudySpec, directory: Path, root: Path, study_id: str) -> Any:
    """Optuna's TPE sampler through Ray Tune's OptunaSearch, told what the finished trials of this run found (a
    resumed run goes on from them); the baseline is the first point it tries when it has not been trained yet."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    space: dict[str, Any] = {}
    for key, axis in spec.axes.items():
        if isinstance(axis, Range) and axis.integer:
            space[f"point/{key}"] = optuna.distributions.IntDistribution(int(axis.low), int(axis.high), log=axis.log)
        elif isinstance(axis, Range):
            space[f"point/{key}"] = optuna.distributions.FloatDistribution(axis.low, axis.high, log=axis.log)
        else:
            space[f"point/{key}"] = optuna.distributions.CategoricalDistribution(list(range(len(axis))))
    finished = _finished_points(spec, directory, root, study_id)
    start = [] if any(point == spec.baseline for point, _ in finished) else [_encode(spec, spec.baseline)]
    searcher = OptunaSearch(space, metric=OBJECTIVE, mode="max", points_to_evaluate=start, seed=0)
    for point, value in finished:
        searcher.add_evaluated_point(_encode(spec, point), value)
    return searcher


def _finished_points(spec: StudySpec, directory: Path, root: Path, study_id: str) -> list[tuple[dict[str, Any], float]]:
    """(point, objective) of each trial of this run that saved a checkpoint."""
    out = []
    for status in read_trials(directory).values():
        path = checkpoint_dir(_checkpoint_id(study_id, status.trial), root)
        if status.state == "done" and (path / "meta.json").is_file():
            meta = read_meta(path)
            objective = _Objective(meta.config.select_by)
            out.append((status.point, max(objective(stats) for stats in meta.history)))
    return out


def _encode(spec: StudySpec, point: dict[str, Any]) -> dict[str, Any]:
    """A point as the search space spells it: a listed axis by the index of its value."""
    out = {}
    for key, axis in spec.axes.items():
        listed = None if isinstance(axis, Range) else [json.dumps(v) for v in axis]
        out[f"point/{key}"] = point[key] if listed is None else listed.index(json.dumps(point[key]))
    return out


def _decode(spec: StudySpec, point: dict[str, Any]) -> dict[str, Any]:
    """The point a TPE trial trains: a listed axis's value from its index."""
    out = {}
    for key, value in point.items():
        axis = spec.axes[key]
        out[key] = value if isinstance(axis, Range) else axis[value]
    return out


def _tune(study_id: str, directory: Path, spec: StudySpec, info: RunInfo, root: Path, pending: list[str]) -> None:
    """The pending trials on Ray Tune, each in a worker with one CPU (and a share of a GPU when there is one): the
    fixed trials of a grid or random search, or as many TPE trials as are pending."""
    from ray import tune

    run = {
        "dir": str(directory),
        "checkpoints": str(root),
        "study_id": study_id,
        "profile": info.profile,
        "data": info.data,
        "device": info.device,
        "ids": pending,
    }
    if spec.search == "tpe":
        param_space: dict[str, Any] = {"run": run}
        searcher, samples = _tpe(spec, directory, root, study_id), len(pending)
    else:
        trials = {t.id: t for t in spec.trials(info.profile)}
        fixed = [{"id": i, "point": trials[i].point, "seed": trials[i].seed} for i in pending]
        param_space, searcher, samples = {"run": run, "trial": tune.grid_search(fixed)}, None, 1
    storage = info.storage or str((directory / "ray").resolve())  # a cluster needs storage every node reaches
    tuner = tune.Tuner(
        tune.with_resources(_run_trial_then_release, {"cpu": 1, "gpu": _gpus_per_trial()}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            num_samples=samples,
            search_alg=searcher,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
            scheduler=_scheduler(spec, info.profile),
            max_concurrent_trials=spec.concurrent,
            reuse_actors=True,  # a worker trains trial after trial: Python, torch and fer_core start once per CPU
        ),
        run_config=tune.RunConfig(name=study_id, storage_path=storage, verbose=0),
    )
    with contextlib.redirect_stdout(sys.stderr):  # Ray Tune's progress tables; stdout stays the report (--json)
        grid = tuner.fit()  # returns normally when trials fail: record those a trial could not
    statuses = read_trials(directory)  # each trial wrote its own file; the driver only fills in what one could not
    for result in (grid[i] for i in range(len(grid))):
        trial_id = str(result.path).rstrip("/").rsplit("/", 1)[-1]  # the trial's folder: _trial_name
        status = statuses.get(trial_id) or TrialStatus(trial_id, "queued", {}, 0)
        if result.error is not None and status.state != "failed":
            reason = str(result.error).strip().splitlines()[-1][:300]  # a worker killed before it could say
            write_trial(directory, replace(status, state="failed", error=reason))
        elif result.error is None and status.state == "running":  # ASHA ended it: it trails the others
            write_trial(directory, replace(status, state="stopped", error=f"stopped by ASHA after epoch {status.epoch}"))


def execute(study_id: str, directory: Path, spec: StudySpec, info: RunInfo, root: Path) -> RunInfo:
    """Train every pending trial of a study run on Ray Tune; returns the run's final state."""
    if spec.search == "tpe":
        planned = {i: TrialStatus(i, "queued", {}, 0) for i in spec.trial_ids(info.profile)}  # points chosen as it runs
    else:
        planned = {t.id: TrialStatus(t.id, "queued", t.point, t.seed) for t in spec.trials(info.profile)}
    pending = _pending(study_id, list(planned), root, directory)
    for trial_id in pending:
        write_trial(directory, planned[trial_id])
    if pending:
        # A local study takes its device like a sidebar job does: one of them at a time (a cluster is Ray's to share).
        name = f"study {study_id}"
        if info.address is None:
            acquire_device(info.device, DeviceHolder(name, "study", os.getpid()))
        started = start_ray(info.address)
        try:
            _tune(study_id, directory, spec, info, root, pending)
        finally:
            if started:
                import ray

                ray.shutdown()
            release_device(info.device, name)
    record_cancelled(directory)  # asked to stop (the study or the trial) and never got to say it did
    statuses = read_trials(directory)
    failed = [i for i in planned if statuses.get(i) is None or statuses[i].state not in ("done", "stopped", "cancelled")]
    final = replace(info, state="cancelled" if cancel_requested(directory) else "failed" if failed else "finished")
    write_run(directory, final)
    return final


def run_study(
    spec_path: Path,
    spec: StudySpec,
    profile: str,
    data: str,
    device: str = "auto",
    address: str | None = None,
    checkpoints: Path | None = None,
    runs_root: Path | None = None,
    storage: str | None = None,
    study_id: str | None = None,
) -> tuple[str, RunInfo]:
    """Start a study run: a new id, the study file copied beside its status files, then every trial."""
    spec.profile(profile)
    data = str(dataset_path(data).resolve())  # trials run in Ray's workers, in other folders
    study_id = study_id or new_study_id(spec, profile)  # given by start_study, which made the folder
    directory = prepare_run_dir(study_id, spec_path, runs_root)
    info = RunInfo(study_id, profile, data, device, address, storage, "running", now(), os.getpid())
    write_run(directory, info)
    return study_id, _execute_or_record(study_id, directory, spec, info, (checkpoints or default_root()).resolve())


def resume_study(study_id: str, checkpoints: Path | None = None, runs_root: Path | None = None) -> RunInfo:
    """Run the trials of an interrupted study that have no checkpoint yet (a killed driver, a reboot)."""
    directory = study_dir(study_id, runs_root)
    (directory / "cancel").unlink(missing_ok=True)  # resuming is asking it to go on
    info = replace(read_run(directory), state="running", pid=os.getpid(), error=None)
    write_run(directory, info)
    return _execute_or_record(study_id, directory, read_spec(directory), info, (checkpoints or default_root()).resolve())


def _execute_or_record(study_id: str, directory: Path, spec: StudySpec, info: RunInfo, root: Path) -> RunInfo:
    """execute(), and a run that fails as a whole says why in run.json (the CLI and the page show it)."""
    try:
        return execute(study_id, directory, spec, info, root)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
        for status in read_trials(directory).values():  # they stopped with it: none is left saying "running"
            if status.state in UNFINISHED:
                write_trial(directory, replace(status, state="failed", error=f"the study run failed: {error.splitlines()[0]}"))
        write_run(directory, replace(info, state="failed", error=error))
        raise
