"""A study run on disk: what the driver, its trials (in Ray's workers), the CLI and the app read and write.

    runs/studies/<study id>/study.toml         the study file as it was run (resume reads it back)
    runs/studies/<study id>/run.json           profile, data, device, address, state, started_at, the driver's pid
    runs/studies/<study id>/trials/<trial>.json  queued | running (epoch, batch, val acc) | done (checkpoint)
                                                 | failed (reason) | stopped (by ASHA) | cancelled
    runs/studies/<study id>/trials/<trial>.cancel  asks that one trial to stop between batches (or never to start)
    runs/studies/<study id>/cancel             asks every trial to stop between batches

Every file is written atomically; a trial writes only its own file, so trials never contend. Torch- and Ray-free.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ..atomic import write_text_atomically
from ..data.choices import dataset_path
from ..training.jobs import default_runs_root, pid_alive, refuse_if_busy, start_background
from .spec import StudySpec, parse_study

# "cancelling" is never written: it is how a queued or running trial reads back once it was asked to stop.
TrialState = Literal["queued", "running", "cancelling", "done", "failed", "stopped", "cancelled"]
TRIAL_STATES: tuple[TrialState, ...] = ("queued", "running", "cancelling", "done", "failed", "stopped", "cancelled")
UNFINISHED: tuple[TrialState, ...] = ("queued", "running", "cancelling")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class RunInfo:
    study_id: str
    profile: str
    data: str
    device: str
    address: str | None  # a Ray cluster, or None for a local instance
    storage: str | None  # Ray Tune's storage (on a cluster: a path or URI every node reaches); None: the run's folder
    state: str  # starting, running, finished, failed (some trials failed, or the run itself: `error`), cancelled;
    # read back only: cancelling (asked to stop, its driver still waits on trials), interrupted (its driver is
    # gone: `study resume` goes on)
    started_at: str
    pid: int | None = None  # the driver process
    error: str | None = None  # why the run itself failed (no cluster at --address, ...)


@dataclass(frozen=True)
class TrialStatus:
    trial: str
    state: TrialState
    point: dict[str, Any]
    seed: int
    epoch: int = 0  # epochs finished
    val_acc: float | None = None
    checkpoint: str | None = None
    error: str | None = None
    batch: int = 0  # of the epoch being trained (epoch + 1), rewritten every few seconds
    batches: int = 0
    stage: str = ""  # what it does outside the epochs: loading data, teachers predicting, testing, saving

    def progress(self) -> str:
        """Where a trial is: 'epoch 2, batch 40/225', 'epoch 2: validating', a stage ('testing the best epoch's
        weights...'), or the epochs it finished."""
        if self.state in ("running", "cancelling"):
            if self.stage:
                return self.stage
            if not self.batches:
                return f"epoch {self.epoch + 1}: starting"
            if self.batch == self.batches:
                return f"epoch {self.epoch + 1}: validating"
            return f"epoch {self.epoch + 1}, batch {self.batch}/{self.batches}"
        return f"{self.epoch} epoch{'s' * (self.epoch != 1)}" if self.epoch else ""


def studies_root() -> Path:
    return default_runs_root() / "studies"


def study_dir(study_id: str, root: Path | None = None) -> Path:
    """A run's folder (absolute: its trials write to it from Ray's workers, in other working folders)."""
    if not _ID.match(study_id) or ".." in study_id:
        raise ValueError(f"invalid study id {study_id!r}")
    return ((root or studies_root()) / study_id).resolve()


def new_study_id(spec: StudySpec, profile: str) -> str:
    return f"{spec.name}-{profile}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_run(directory: Path, info: RunInfo) -> None:
    write_text_atomically(directory / "run.json", json.dumps(asdict(info), indent=1))


def read_run(directory: Path) -> RunInfo:
    """A run as its driver last wrote it; "interrupted" when it says starting or running but its driver is gone,
    "cancelling" while its driver is alive and was asked to stop."""
    try:
        info = RunInfo(**json.loads((directory / "run.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{directory.name}: not a study run ({exc})") from None
    if info.state not in ("starting", "running"):
        return info
    if not pid_alive(info.pid):
        return replace(info, state="interrupted")
    return replace(info, state="cancelling") if cancel_requested(directory) else info


def driver_alive(info: RunInfo) -> bool:
    """Whether the run's driver still runs (as read_run read it back): it then records its trials' ends itself."""
    return info.state in ("starting", "running", "cancelling")


def read_spec(directory: Path) -> StudySpec:
    return parse_study((directory / "study.toml").read_text(encoding="utf-8"), f"{directory.name}/study.toml")


def write_trial(directory: Path, status: TrialStatus) -> None:
    write_text_atomically(directory / "trials" / f"{status.trial}.json", json.dumps(asdict(status)))


def read_trials(directory: Path) -> dict[str, TrialStatus]:
    """Every trial's last written status, by trial id; an unreadable file counts as not started. A queued or
    running trial asked to stop reads as "cancelling" until it has."""
    out = {}
    for file in sorted((directory / "trials").glob("*.json")):
        try:
            status = TrialStatus(**json.loads(file.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue
        if status.state in UNFINISHED and trial_cancel_requested(directory, status.trial):
            status = replace(status, state="cancelling")
        out[status.trial] = status
    return out


def trial_counts(trials: dict[str, TrialStatus]) -> dict[str, int]:
    """How many trials are in each state, in TRIAL_STATES order (the page and `study status` show the same)."""
    return {state: n for state in TRIAL_STATES if (n := sum(t.state == state for t in trials.values()))}


def list_runs(root: Path | None = None) -> list[RunInfo]:
    base = root or studies_root()
    runs = []
    for d in sorted(base.glob("*/run.json")) if base.is_dir() else []:
        try:
            runs.append(read_run(d.parent))
        except ValueError:
            continue
    return sorted(runs, key=lambda r: r.started_at, reverse=True)


def save_composed(name: str, text: str, root: Path | None = None) -> Path:
    """Keep a study composed in the app as a file (runs/studies/composed/NAME.toml): it can be rerun from the CLI."""
    path = (root or studies_root()) / "composed" / f"{name}.toml"
    write_text_atomically(path, text)
    return path


def prepare_run_dir(study_id: str, spec_path: Path, runs_root: Path | None = None) -> Path:
    """A run's folder with its trials folder and the study file as it is run (kept if already there: a background
    launch made it before its driver starts)."""
    directory = study_dir(study_id, runs_root)
    (directory / "trials").mkdir(parents=True, exist_ok=True)
    if not (directory / "study.toml").is_file():
        shutil.copyfile(spec_path, directory / "study.toml")
    return directory


def record_cancelled(directory: Path) -> None:
    """Trials asked to stop that are not running any more are cancelled (the driver, once its trials ended, or
    cancel_study for a run whose driver is gone)."""
    for status in read_trials(directory).values():
        if status.state == "cancelling":
            write_trial(directory, replace(status, state="cancelled"))


def start_study(
    spec_path: Path,
    spec: StudySpec,
    profile: str,
    data: str,
    device: str = "auto",
    checkpoints: Path | None = None,
    runs_root: Path | None = None,
) -> str:
    """Run a study in a background process (`fer_core study run`); returns its id at once (the app's Launch)."""
    spec.profile(profile)
    dataset_path(data)  # bad data and a busy device are refused now, rather than failing in the background
    refuse_if_busy(device)
    study_id = new_study_id(spec, profile)
    directory = prepare_run_dir(study_id, spec_path, runs_root)
    cmd = [
        "study",
        "run",
        str(spec_path),
        "--profile",
        profile,
        "--data",
        data,
        "--device",
        device,
        "--study-id",
        study_id,
        "--runs",
        str(directory.parent),
    ]
    if checkpoints is not None:
        cmd += ["--checkpoints", str(checkpoints)]
    pid = start_background(cmd, directory / "log.txt")
    write_run(directory, RunInfo(study_id, profile, data, device, None, None, "starting", now(), pid))
    return study_id


def resume_in_background(study_id: str, checkpoints: Path | None = None, runs_root: Path | None = None) -> RunInfo:
    """Resume an interrupted run in a background process (`fer_core study resume`): the app's Resume."""
    directory = study_dir(study_id, runs_root)
    info = read_run(directory)
    if info.state != "interrupted":
        raise ValueError(f"{study_id} is {info.state}: only a run whose driver is gone is resumed")
    refuse_if_busy(info.device)
    cmd = ["study", "resume", study_id, "--runs", str(directory.parent)]
    cmd += ["--checkpoints", str(checkpoints)] if checkpoints is not None else []
    starting = replace(info, state="starting", pid=start_background(cmd, directory / "log.txt"), error=None)
    write_run(directory, starting)
    return starting


def cancel_requested(directory: Path) -> bool:
    return (directory / "cancel").exists()


def trial_cancel_requested(directory: Path, trial_id: str) -> bool:
    """Whether this trial must stop: its study was cancelled, or the trial alone."""
    return cancel_requested(directory) or _trial_cancel_file(directory, trial_id).exists()


def _trial_cancel_file(directory: Path, trial_id: str) -> Path:
    if not _ID.match(trial_id) or ".." in trial_id:
        raise ValueError(f"invalid trial id {trial_id!r}")
    return directory / "trials" / f"{trial_id}.cancel"


def cancel_study(study_id: str, runs_root: Path | None = None) -> RunInfo:
    """Ask a study to stop: its trials see the flag between batches and end without a checkpoint, queued trials
    never start, finished ones keep theirs. A run whose driver is gone is marked cancelled at once."""
    directory = study_dir(study_id, runs_root)
    read_run(directory)  # an id that is not a run is said so, before a flag is left for it
    (directory / "cancel").touch()
    info = read_run(directory)  # with the flag there: "cancelling" while the driver lives
    if driver_alive(info):
        return info  # it writes "cancelled" once its trials have stopped
    record_cancelled(directory)  # every unfinished trial reads "cancelling" now that the run's flag is there
    cancelled = replace(info, state="cancelled")
    write_run(directory, cancelled)
    return cancelled


def cancel_trial(study_id: str, trial_id: str, runs_root: Path | None = None) -> TrialStatus:
    """Ask one queued or running trial to stop (between batches; a queued one never starts) while the study goes
    on; a resume does not train it again. Returns the trial as it reads now."""
    directory = study_dir(study_id, runs_root)
    status = read_trials(directory).get(trial_id)
    if status is None:
        raise ValueError(f"{study_id} has no trial {trial_id!r}")
    if status.state not in UNFINISHED:
        raise ValueError(f"trial {trial_id} is {status.state}: only a queued or running trial can be cancelled")
    _trial_cancel_file(directory, trial_id).touch()
    if not driver_alive(read_run(directory)):  # nobody would record it: a trial of an interrupted run
        write_trial(directory, replace(status, state="cancelled"))
    return read_trials(directory)[trial_id]


def trial_cancelled_alone(directory: Path, trial_id: str) -> bool:
    """A trial the user cancelled by itself: a resumed run leaves it cancelled."""
    return _trial_cancel_file(directory, trial_id).exists()
