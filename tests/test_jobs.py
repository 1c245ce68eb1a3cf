"""Background training jobs: one per device, cancel, kill -9, and what the UI reads back."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from fer_core.records import EpochStats
from fer_core.store import list_checkpoints
from fer_core.training import make_config
from fer_core.training.jobs import (
    BatchProgress,
    JobBusy,
    JobReporter,
    JobStatus,
    active_job,
    cancel_job,
    list_jobs,
    read_job,
    start_job,
)


def wait_for(predicate, timeout: float = 240, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize(
    "data, message",
    [("", "give the path of FER2013"), ("missing.zip", "no such file or folder"), ("faces.txt", "use a Kaggle .zip")],
)
def test_a_job_on_a_dataset_that_cannot_be_one_is_refused_before_it_starts(tmp_path, data, message):
    from fer_core.data import DataError

    (tmp_path / "faces.txt").write_text("not a dataset")
    cfg = make_config("keras_cnn", "quick", data=str(tmp_path / data) if data else "", device="cpu")
    with pytest.raises(DataError, match=message):
        start_job(cfg, root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or list_jobs(tmp_path / "runs") == []


def test_job_lifecycle_busy_kill_cancel(kaggle_zip, tmp_path, monkeypatch):
    store, runs = tmp_path / "store", tmp_path / "runs"
    monkeypatch.setenv("FER_CHECKPOINTS", str(store))
    long_cfg = make_config("keras_cnn", "quick", data=str(kaggle_zip), epochs=500, batch_size=4, device="cpu")

    first = start_job(long_cfg, root=runs)
    wait_for(lambda: read_job(runs / first).batch, what="the first batch")
    assert active_job("cpu", runs).id == first
    with pytest.raises(JobBusy, match="already running"):
        start_job(long_cfg, root=runs)

    os.kill(read_job(runs / first).pid, signal.SIGKILL)  # a crash mid-epoch
    job = wait_for(lambda: (j := read_job(runs / first)).state == "failed" and j, what="the killed job to show as failed")
    assert "ended unexpectedly" in job.message
    assert list_checkpoints(store) == []

    second = start_job(long_cfg, root=runs)  # the stale lock of the killed job does not block
    wait_for(lambda: read_job(runs / second).batch, what="the second job's first batch")
    cancel_job(second, root=runs)
    job = wait_for(lambda: (j := read_job(runs / second)).state == "cancelled" and j, what="cancellation")
    assert list_checkpoints(store) == [] and active_job("cpu", runs) is None

    quick = make_config("keras_cnn", "quick", data=str(kaggle_zip), epochs=2, batch_size=8, device="cpu")
    third = start_job(quick, root=runs)
    job = wait_for(lambda: (j := read_job(runs / third)).state in ("succeeded", "failed") and j, what="the quick job")
    assert job.state == "succeeded", job.message
    assert [c.id for c in list_checkpoints(store)] == [job.checkpoint] and job.store == store.resolve()
    assert len(job.epochs) == 2 and job.eta_s() == 0
    assert [j.id for j in list_jobs(runs)][0] == third


def test_reporter_status_follows_the_run(tmp_path):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    callbacks = JobReporter(job_dir, "cpu").callbacks()
    callbacks.on_stage("8 teacher(s) predicting the training faces")
    assert json.loads((job_dir / "status.json").read_text())["message"].startswith("8 teacher(s)")
    callbacks.on_batch(1, 1, 10, torch.tensor(0.5))
    assert json.loads((job_dir / "status.json").read_text())["message"] == "epoch 1"
    assert json.loads((job_dir / "batch.json").read_text())["loss"] == 0.5
    assert not callbacks.should_stop()
    (job_dir / "cancel").touch()
    assert callbacks.should_stop()


def _job(cfg, epochs: int, batch: BatchProgress | None, state: str = "running", directory: Path = Path("j")) -> JobStatus:
    history = [
        EpochStats(
            epoch=e,
            epochs=cfg.epochs,
            train_loss=1.0,
            train_acc=0.5,
            val_loss=1.0,
            val_acc=0.5,
            lr=1e-3,
            images_per_s=100.0,
            epoch_time_s=60.0,
            elapsed_s=60.0 * e,
        )
        for e in range(1, epochs + 1)
    ]
    return JobStatus(
        id="j",
        dir=directory,
        state=state,
        config=cfg,
        message="",
        checkpoint=None,
        store=None,
        epochs=history,
        batch=batch,
        started_at="",
        pid=None,
    )


def test_progress_and_eta_follow_the_runs_real_bound():
    """A budgeted run's epoch cap (1000 in the shipped zoo) is not its length: the budget is."""
    budgeted = make_config("keras_cnn", epochs=1000, time_budget_min=15)
    job = _job(budgeted, epochs=3, batch=BatchProgress(epoch=4, batch=50, batches=100))
    assert job.position() == "epoch 4, 3.5 of 15 min"  # three 1-minute epochs and half of the fourth
    assert job.eta_s() == pytest.approx(15 * 60 - 210) and job.fraction_done() == pytest.approx(210 / 900)
    by_epochs = make_config("keras_cnn", epochs=10)
    job = _job(by_epochs, epochs=3, batch=BatchProgress(epoch=4, batch=50, batches=100))
    assert job.position() == "epoch 4/10"
    assert job.eta_s() == pytest.approx(6.5 * 60) and job.fraction_done() == pytest.approx(0.35)
    assert _job(by_epochs, epochs=10, batch=None, state="succeeded").eta_s() == 0


def test_the_eta_counts_on_between_reports_and_cancelling_lasts_until_the_process_stops(tmp_path):
    """Validation writes no batches: the estimate must not freeze there. A cancel shows until the job has ended."""
    by_epochs = make_config("keras_cnn", epochs=10)
    validating = _job(by_epochs, 3, BatchProgress(epoch=4, batch=100, batches=100, at=time.time() - 30), directory=tmp_path)
    assert validating.eta_s() == pytest.approx(6 * 60 - 30, abs=5)
    assert not validating.cancelling
    (tmp_path / "cancel").touch()
    assert validating.cancelling
    assert not _job(by_epochs, 3, None, state="cancelled", directory=tmp_path).cancelling
