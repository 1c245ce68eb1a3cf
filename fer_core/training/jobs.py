"""Background training jobs: a separate process per run, talking to the UI only through files.

    runs/<job>/config.json     the TrainConfig
    runs/<job>/status.json     state (running, succeeded, failed, cancelled), pid, message, checkpoint id
    runs/<job>/progress.jsonl  one line per finished epoch (EpochStats)
    runs/<job>/batch.json      the latest batch (epoch, batch, batches, loss), rewritten about once a second
    runs/<job>/cancel          created by the UI to ask the process to stop between batches
    runs/<job>/state.pt        resume state after the last finished epoch
    runs/lock-<device>         who holds the device (a job, or a study's driver): one at a time per device

A browser refresh or a second tab re-attaches by reading the same files; a killed process is
detected by its pid and reported as failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import write_text_atomically
from ..data.choices import dataset_path
from ..devices import physical_device
from ..records import EpochStats
from ..repository import REPO
from .config import TrainConfig

if TYPE_CHECKING:  # the app lists and starts jobs without importing torch; only the training process needs it
    import torch

    from .loop import Callbacks


class JobBusy(RuntimeError):
    """Another training job holds this device."""


def default_runs_root() -> Path:
    env = os.environ.get("FER_RUNS")
    return Path(env) if env else REPO / "runs"


def _write_json(path: Path, obj: dict) -> None:
    write_text_atomically(path, json.dumps(obj))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed child not yet reaped) is dead for our purposes
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def _device_key(device: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in (device or "auto"))


@dataclass(frozen=True)
class BatchProgress:
    """The latest batch of a running job (batch.json)."""

    epoch: int = 0
    batch: int = 0
    batches: int = 0
    loss: float = float("nan")
    elapsed_s: float = 0.0  # since the process started
    at: float = 0.0  # when it was written (Unix time): estimates count on from it through validation and testing


@dataclass(frozen=True)
class JobStatus:
    id: str
    dir: Path
    state: str
    config: TrainConfig | None  # None when config.json is missing or unreadable
    message: str
    checkpoint: str | None
    store: Path | None  # the checkpoint store the run saved to (a CLI run may name another with --checkpoints)
    epochs: list[EpochStats]
    batch: BatchProgress | None
    started_at: str
    pid: int | None

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def cancelling(self) -> bool:
        """Cancel was asked and the process has not stopped yet (it looks between batches of every pass)."""
        return self.running and (self.dir / "cancel").exists()

    @property
    def model(self) -> str:
        return self.config.model if self.config else "?"

    def fraction_done(self) -> float:
        """Share of the run done, by its real bound: the time budget when it has one, else its epochs."""
        if self.config is None:
            return 0.0
        if self.config.time_budget_min:
            return min(1.0, self._elapsed_s() / (self.config.time_budget_min * 60))
        return min(1.0, (len(self.epochs) + self._batch_share()) / self.config.epochs)

    def position(self) -> str:
        """Where the run is, against its real bound: 'epoch 3/30' or 'epoch 3, 4.1 of 15 min'."""
        if self.config is None:
            return f"epoch {len(self.epochs) + 1}"
        return run_position(self.config, min(len(self.epochs) + 1, self.config.epochs), self._elapsed_s())

    def eta_s(self) -> float | None:
        """Seconds left: the rest of the time budget, or the epochs left at the mean epoch time so far (the
        batch rate within the first epoch)."""
        if self.config is None or not self.running and not self.epochs:
            return None
        if self.config.time_budget_min:
            return max(0.0, self.config.time_budget_min * 60 - self._elapsed_s()) if self.running else 0.0
        total = self.config.epochs
        if self.epochs:
            per_epoch = self.epochs[-1].elapsed_s / len(self.epochs)
            return max(0.0, (total - len(self.epochs) - self._batch_share()) * per_epoch - self._since_report())
        if self.batch and self.batch.batch and self.batch.elapsed_s:
            per_batch = self.batch.elapsed_s / self.batch.batch
            return max(0.0, per_batch * (self.batch.batches * total - self.batch.batch) - self._since_report())
        return None

    def _since_report(self) -> float:
        """Seconds since the running process last wrote its batch: the clock does not stop between two reports."""
        return max(0.0, time.time() - self.batch.at) if self.running and self.batch and self.batch.at else 0.0

    def _batch_share(self) -> float:
        return self.batch.batch / max(1, self.batch.batches) if self.batch and self.running else 0.0

    def _elapsed_s(self) -> float:
        """Training time so far: finished epochs plus the share of the current one."""
        done = self.epochs[-1].elapsed_s if self.epochs else 0.0
        if not self.running or not self.epochs:
            return done
        return done + self._batch_share() * self.epochs[-1].epoch_time_s + self._since_report()


def run_position(cfg: TrainConfig, epoch: int, elapsed_s: float) -> str:
    """'epoch 3/30', or 'epoch 3, 4.1 of 15 min' for a run bounded by its time budget (its epochs are only a cap)."""
    if cfg.time_budget_min:
        return f"epoch {epoch}, {elapsed_s / 60:.1f} of {cfg.time_budget_min:g} min"
    return f"epoch {epoch}/{cfg.epochs}"


def read_job(job_dir: Path) -> JobStatus:
    status = _read_json(job_dir / "status.json")
    state = status.get("state", "failed")
    message = status.get("message", "")
    if state == "running" and not pid_alive(status.get("pid")):
        state, message = "failed", "the training process ended unexpectedly (killed or crashed); earlier checkpoints are intact"
    epochs = []
    progress = job_dir / "progress.jsonl"
    if progress.exists():
        for line in progress.read_text(encoding="utf-8").splitlines():
            try:
                epochs.append(EpochStats.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                break  # a line cut by a kill: ignore the tail
    batch = _read_json(job_dir / "batch.json")
    return JobStatus(
        id=job_dir.name,
        dir=job_dir,
        state=state,
        config=_read_config(job_dir / "config.json"),
        message=message,
        checkpoint=status.get("checkpoint"),
        store=Path(status["store"]) if status.get("store") else None,
        epochs=epochs,
        batch=BatchProgress(**batch) if batch else None,
        started_at=status.get("started_at", ""),
        pid=status.get("pid"),
    )


def _read_config(path: Path) -> TrainConfig | None:
    try:
        return TrainConfig.from_dict(_read_json(path))
    except (TypeError, ValueError):
        return None


def list_jobs(root: Path | None = None) -> list[JobStatus]:
    root = Path(root or default_runs_root())
    if not root.is_dir():
        return []
    jobs = [read_job(d) for d in root.iterdir() if d.is_dir() and (d / "status.json").exists()]
    return sorted(jobs, key=lambda j: j.started_at, reverse=True)


@dataclass(frozen=True)
class DeviceHolder:
    """Who holds a device: a training job (its id; the job's files say whether it runs) or a study's driver (its pid)."""

    name: str  # a job id, or "study <study id>"
    kind: str  # "job" or "study"
    pid: int | None = None


def _lock_path(root: Path, device: str) -> Path:
    return root / f"lock-{_device_key(physical_device(device))}"


def _read_holder(lock: Path) -> DeviceHolder | None:
    try:
        text = lock.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    try:
        return DeviceHolder(**json.loads(text))
    except (ValueError, TypeError):
        return DeviceHolder(text, "job") if text else None  # a lock written before studies existed: a job id


def _holds(root: Path, holder: DeviceHolder) -> bool:
    if holder.kind == "study":
        return pid_alive(holder.pid)
    job_dir = root / holder.name
    return job_dir.is_dir() and (read_job(job_dir).running or not (job_dir / "status.json").exists())


def device_holder(device: str = "auto", root: Path | None = None) -> DeviceHolder | None:
    """The job or study running on `device` now, or None."""
    root = Path(root or default_runs_root())
    holder = _read_holder(_lock_path(root, device))
    return holder if holder is not None and _holds(root, holder) else None


def active_job(device: str = "auto", root: Path | None = None) -> JobStatus | None:
    root = Path(root or default_runs_root())
    holder = device_holder(device, root)
    return read_job(root / holder.name) if holder is not None and holder.kind == "job" else None


def _busy(device: str, holder: DeviceHolder) -> JobBusy:
    what = f"training job {holder.name}" if holder.kind == "job" else holder.name
    return JobBusy(f"{what} is already running on device '{device}': wait for it or cancel it")


def refuse_if_busy(device: str, root: Path | None = None) -> None:
    """JobBusy, naming who holds `device`, when a job or study runs there now: refused before anything starts."""
    holder = device_holder(device, root)
    if holder is not None:
        raise _busy(device, holder)


def acquire_device(device: str, holder: DeviceHolder, root: Path | None = None) -> Path:
    """Take `device` for a job or a study; JobBusy, naming who holds it, when another one runs there."""
    root = Path(root or default_runs_root())
    root.mkdir(parents=True, exist_ok=True)
    lock = _lock_path(root, device)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            current = _read_holder(lock)
            if current is not None and _holds(root, current):
                raise _busy(device, current) from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(asdict(holder)))
        return lock
    raise JobBusy(f"could not take the lock of device '{device}'")


def release_device(device: str, name: str, root: Path | None = None) -> None:
    lock = _lock_path(Path(root or default_runs_root()), device)
    holder = _read_holder(lock)
    if holder is not None and holder.name == name:
        lock.unlink(missing_ok=True)


def start_job(cfg: TrainConfig, root: Path | None = None, checkpoints: Path | None = None) -> str:
    """Start a training process in the background; returns the job id. Raises JobBusy for a busy device and
    DataError for a dataset path that cannot be one, before anything starts."""
    dataset_path(cfg.data)
    root = Path(root or default_runs_root())
    root.mkdir(parents=True, exist_ok=True)
    job_id = f"{cfg.model}-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
    job_dir = root / job_id
    lock = acquire_device(cfg.device, DeviceHolder(job_id, "job"), root)
    try:
        job_dir.mkdir()
        _write_json(job_dir / "config.json", cfg.to_dict())
        _write_json(job_dir / "status.json", {"state": "starting", "pid": None, "started_at": _now(), "message": ""})
        cmd = ["train", "--config-json", str(job_dir / "config.json"), "--job-dir", str(job_dir)]
        if checkpoints is not None:
            cmd += ["--checkpoints", str(checkpoints)]
        pid = start_background(cmd, job_dir / "log.txt")
        _write_json(job_dir / "status.json", {"state": "running", "pid": pid, "started_at": _now(), "message": "starting"})
    except BaseException:
        lock.unlink(missing_ok=True)
        raise
    return job_id


def start_background(cli_args: list[str], log: Path) -> int:
    """`python -m fer_core <cli_args>` in its own session (it outlives the app's reruns), output to `log`; its pid."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fer_core", *cli_args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO,
        )
    return proc.pid


def cancel_job(job_id: str, root: Path | None = None) -> None:
    job_dir = Path(root or default_runs_root()) / job_id
    if job_dir.is_dir():
        (job_dir / "cancel").touch()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class JobReporter:
    """Used inside the training process: writes progress files and watches for the cancel flag."""

    def __init__(self, job_dir: Path, device: str) -> None:
        self.dir = job_dir
        self.device = device
        self.t0 = time.time()
        self._last_batch_write = 0.0
        status = _read_json(job_dir / "status.json")
        self.started_at = status.get("started_at", _now())

    def set_status(self, state: str, message: str = "", saved: Path | None = None) -> None:
        _write_json(
            self.dir / "status.json",
            {
                "state": state,
                "pid": os.getpid(),
                "started_at": self.started_at,
                "message": message,
                "checkpoint": saved.name if saved else None,
                "store": str(saved.parent.resolve()) if saved else None,
            },
        )

    def release(self) -> None:
        release_device(self.device, self.dir.name, self.dir.parent)

    def on_epoch(self, stats: EpochStats) -> None:
        with (self.dir / "progress.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(stats.to_dict()) + "\n")

    def on_batch(self, epoch: int, batch: int, batches: int, loss: torch.Tensor) -> None:
        if batch == 1:  # replaces a stage message ("teachers predicting...") once training is under way
            self.set_status("running", f"epoch {epoch}")
        now = time.time()
        if now - self._last_batch_write >= 1.0 or batch == batches:
            self._last_batch_write = now
            _write_json(
                self.dir / "batch.json",
                {"epoch": epoch, "batch": batch, "batches": batches, "loss": float(loss), "elapsed_s": now - self.t0, "at": now},
            )

    def on_stage(self, message: str) -> None:
        self.set_status("running", message)

    def should_stop(self) -> bool:
        return (self.dir / "cancel").exists()

    def callbacks(self, shown: Callbacks | None = None) -> Callbacks:
        """The job's callbacks; `shown`'s, if given, hear every event too (the CLI's progress bar and lines)."""
        from .loop import Callbacks

        also = shown or Callbacks()
        return Callbacks(
            on_epoch=_both(self.on_epoch, also.on_epoch),
            on_batch=_both(self.on_batch, also.on_batch),
            should_stop=self.should_stop,
            on_stage=_both(self.on_stage, also.on_stage),
        )


def _both(first: Callable[..., None], then: Callable[..., None] | None) -> Callable[..., None]:
    """A callback that calls `first`, then `then` when there is one."""
    if then is None:
        return first

    def call(*args: object) -> None:
        first(*args)
        then(*args)

    return call


def run_job(
    cfg: TrainConfig,
    job_dir: Path,
    root: Path | None = None,
    shown: Callbacks | None = None,
    measure_efficiency: bool = True,
) -> Path:
    """Train in this process as a job: its status, progress and cancel flag are files in `job_dir` (what the app
    watches and resumes from); succeeded, failed (with the reason) or cancelled is written whatever happens, and the
    device is released. Returns the checkpoint's folder; a cancel raises TrainingCancelled after saying so."""
    from .errors import TrainingCancelled, describe_failure
    from .run import train_and_save

    reporter = JobReporter(job_dir, cfg.device)
    reporter.set_status("running", "loading data")
    try:
        path = train_and_save(
            cfg,
            root=root,
            callbacks=reporter.callbacks(shown),
            state_file=job_dir / "state.pt",
            measure_efficiency=measure_efficiency,
        )
    except TrainingCancelled as exc:
        reporter.set_status("cancelled", f"{exc}; nothing was saved")
        raise
    except BaseException as exc:
        reporter.set_status("failed", describe_failure(exc) if not isinstance(exc, KeyboardInterrupt) else "interrupted")
        raise
    finally:
        reporter.release()
    reporter.set_status("succeeded", "done", saved=path)
    return path
