"""Run a study's trials on Ray Tune: a local Ray instance on this machine by default, an existing cluster with
`address`. The only module that imports ray.

Ray Tune schedules the trials on the CPUs and GPUs it finds (several small trials share a GPU through a fractional
GPU resource). Each trial is one ordinary `train_and_save` run that writes an ordinary checkpoint (atomically,
with the study recorded in its meta.json) and its own status file; a trial that raises or diverges is recorded as
failed with its reason and the study goes on. Resuming a study reruns only the trials without a checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..records import EpochStats, StudyTrial
from ..store import checkpoint_dir, default_root
from ..training.config import TrainConfig
from ..training.jobs import DeviceHolder, acquire_device, release_device
from .runs import (
    RunInfo,
    TrialStatus,
    cancel_requested,
    new_study_id,
    now,
    read_run,
    read_spec,
    read_trials,
    study_dir,
    write_run,
    write_trial,
)
from .spec import StudyError, StudySpec, Trial

REPO = Path(__file__).resolve().parents[2]


def start_ray(address: str | None = None) -> bool:
    """A local instance bound to 127.0.0.1 with no dashboard, or a connection to `address` ("auto", "ray://...");
    False when this process is already connected (then whoever connected it shuts it down)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # local Ray listens on loopback only
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return False
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}}
    with contextlib.redirect_stdout(sys.stderr):
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=False, configure_logging=False)
        else:
            ray.init(include_dashboard=False, runtime_env=env, log_to_driver=False, configure_logging=False)
    return True


def _run_trial(config: dict[str, Any]) -> None:
    """One trial inside a Ray worker: train, write the checkpoint, keep the trial's status file current."""
    from ray import tune

    from ..training import Callbacks, TrainingCancelled, train_and_save

    config = config["trial"]
    directory, root = Path(config["dir"]), Path(config["checkpoints"])
    cfg = TrainConfig.from_dict(config["config"])
    study = StudyTrial(**config["study"])
    status = TrialStatus(study.trial, "running", study.point, study.seed)
    if cancel_requested(directory):
        write_trial(directory, replace(status, state="cancelled"))
        return
    write_trial(directory, status)

    def on_epoch(stats: EpochStats) -> None:
        nonlocal status
        status = replace(status, epoch=stats.epoch, val_acc=stats.val_acc)
        write_trial(directory, status)
        tune.report({"epoch": stats.epoch, "val_acc": stats.val_acc, "val_loss": stats.val_loss})

    try:
        path = train_and_save(
            cfg,
            root=root,
            callbacks=Callbacks(on_epoch=on_epoch, should_stop=lambda: cancel_requested(directory)),
            measure_efficiency=False,
            study=study,
            checkpoint_id=config["checkpoint_id"],
        )
    except TrainingCancelled:
        write_trial(directory, replace(status, state="cancelled"))
        return
    except SystemExit:  # how Tune ends a trial its scheduler stops (ASHA), from inside tune.report
        write_trial(directory, replace(status, state="stopped", error=f"stopped by ASHA after epoch {status.epoch}"))
        raise
    except BaseException as exc:
        write_trial(directory, replace(status, state="failed", error=f"{type(exc).__name__}: {exc}"))
        raise
    write_trial(directory, replace(status, state="done", checkpoint=path.name))


def _trial_name(trial: Any) -> str:
    """Ray's name for a trial: the study's trial id (Ray would spell out the whole config)."""
    return str(trial.config["trial"]["study"]["trial"])


def _checkpoint_id(study_id: str, trial: Trial) -> str:
    return f"{study_id}-{trial.id}"


def _pending(study_id: str, trials: list[Trial], root: Path, directory: Path) -> list[Trial]:
    """Trials without a checkpoint in the store that ASHA did not stop: what a (resumed) run still has to train."""
    statuses = read_trials(directory)
    return [
        t
        for t in trials
        if not (checkpoint_dir(_checkpoint_id(study_id, t), root) / "meta.json").is_file()
        and (statuses.get(t.id) is None or statuses[t.id].state != "stopped")
    ]


def _gpus_per_trial() -> float:
    import ray

    return 0.25 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def _scheduler(spec: StudySpec, pending: list[Trial]) -> Any:
    """ASHA on the metric the trials select on, when the study asks for early stopping; else Tune's FIFO."""
    if spec.early_stop != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    cfg = pending[0].config
    metric, mode = ("val_loss", "min") if cfg.select_by == "val_loss" else ("val_acc", "max")
    # max_t beyond the last epoch: Tune stops a trial that reaches max_t at its last report, before it saves
    epochs = max(t.config.epochs for t in pending) + 1
    return ASHAScheduler(
        time_attr="training_iteration", metric=metric, mode=mode, max_t=epochs, grace_period=spec.grace_epochs, reduction_factor=2
    )


def _tune(study_id: str, directory: Path, spec: StudySpec, info: RunInfo, root: Path, pending: list[Trial]) -> None:
    """The pending trials on Ray Tune, each in a worker with one CPU (and a share of a GPU when there is one)."""
    from ray import tune

    param = [
        {
            "dir": str(directory),
            "checkpoints": str(root),
            "config": t.config.to_dict(),
            "checkpoint_id": _checkpoint_id(study_id, t),
            "study": {
                "study_id": study_id,
                "study": spec.name,
                "profile": info.profile,
                "trial": t.id,
                "point": t.point,
                "seed": t.seed,
            },
        }
        for t in pending
    ]
    storage = info.storage or str((directory / "ray").resolve())  # a cluster needs storage every node reaches
    tuner = tune.Tuner(
        tune.with_resources(_run_trial, {"cpu": 1, "gpu": _gpus_per_trial()}),
        param_space={"trial": tune.grid_search(param)},
        tune_config=tune.TuneConfig(
            num_samples=1,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
            scheduler=_scheduler(spec, pending),
            max_concurrent_trials=spec.concurrent,
        ),
        run_config=tune.RunConfig(name=study_id, storage_path=storage, verbose=0),
    )
    by_id = {t.id: t for t in pending}
    with contextlib.redirect_stdout(sys.stderr):  # Ray Tune's progress tables; stdout stays the report (--json)
        grid = tuner.fit()  # returns normally when trials fail: record those a trial could not
    statuses = read_trials(directory)  # each trial wrote its own file; the driver only fills in what one could not
    for result in (grid[i] for i in range(len(grid))):
        trial = by_id[(result.config or {})["trial"]["study"]["trial"]]
        status = statuses.get(trial.id) or TrialStatus(trial.id, "queued", trial.point, trial.seed)
        if result.error is not None and status.state != "failed":
            reason = str(result.error).strip().splitlines()[-1][:300]  # a worker killed before it could say
            write_trial(directory, replace(status, state="failed", error=reason))
        elif result.error is None and status.state == "running":  # ASHA ended it: it trails the others
            write_trial(directory, replace(status, state="stopped", error=f"stopped by ASHA after epoch {status.epoch}"))


def execute(study_id: str, directory: Path, spec: StudySpec, info: RunInfo, root: Path) -> RunInfo:
    """Train every pending trial of a study run on Ray Tune; returns the run's final state."""
    trials = spec.trials(info.profile, data=info.data, device=info.device)
    pending = _pending(study_id, trials, root, directory)
    for trial in pending:
        write_trial(directory, TrialStatus(trial.id, "queued", trial.point, trial.seed))
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
    statuses = read_trials(directory)
    failed = [t.id for t in trials if statuses.get(t.id) is None or statuses[t.id].state not in ("done", "stopped")]
    if cancel_requested(directory):
        for status in statuses.values():
            if status.state in ("queued", "running"):
                write_trial(directory, replace(status, state="cancelled"))
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
    source = Path(data).expanduser()
    if not source.exists():
        raise StudyError(f"--data {data}: no such file or folder")
    data = str(source.resolve())  # trials run in Ray's workers, in other folders
    study_id = study_id or new_study_id(spec, profile)  # given by start_study, which made the folder
    directory = study_dir(study_id, runs_root)
    (directory / "trials").mkdir(parents=True, exist_ok=True)
    if not (directory / "study.toml").is_file():
        shutil.copyfile(spec_path, directory / "study.toml")
    info = RunInfo(study_id, profile, data, device, address, storage, "running", now(), os.getpid())
    write_run(directory, info)
    return study_id, execute(study_id, directory, spec, info, (checkpoints or default_root()).resolve())


def resume_study(study_id: str, checkpoints: Path | None = None, runs_root: Path | None = None) -> RunInfo:
    """Run the trials of an interrupted study that have no checkpoint yet (a killed driver, a reboot)."""
    directory = study_dir(study_id, runs_root)
    info = replace(read_run(directory), state="running", pid=os.getpid())
    write_run(directory, info)
    return execute(study_id, directory, read_spec(directory), info, (checkpoints or default_root()).resolve())
