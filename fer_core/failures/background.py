"""Long failure computations (a robustness suite, class maps) in a background thread of the app's process, with a
progress fraction, a time estimate and a cancel between steps. Each step caches its own result (failures/cache.py), so a
cancelled or interrupted job keeps what it finished and a new job skips it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Report = Callable[[float, str], None]  # (fraction of this step done, what is running)
Step = tuple[str, Callable[[Report], object]]  # (what it is, the work)


@dataclass(frozen=True)
class JobStatus:
    fraction: float
    message: str
    elapsed_s: float
    eta_s: float | None  # None until there is something to extrapolate from
    running: bool
    cancelled: bool
    errors: tuple[str, ...]


@dataclass
class BackgroundJob:
    """Steps run one after the other in a daemon thread; `status()` may be read from any thread."""

    name: str
    steps: list[Step]
    _fraction: float = 0.0
    _message: str = "starting"
    _errors: list[str] = field(default_factory=list)
    _cancel: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)
    _started: float = field(default_factory=time.monotonic)
    _finished: float | None = None

    def start(self) -> BackgroundJob:
        threading.Thread(target=self._run, name=f"failures-{self.name}", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            for index, (what, work) in enumerate(self.steps):
                if self._cancel.is_set():
                    break

                def report(fraction: float, message: str, index: int = index, what: str = what) -> None:
                    self._fraction = (index + min(max(fraction, 0.0), 1.0)) / len(self.steps)
                    self._message = f"{what}: {message}"

                report(0.0, "starting")
                try:
                    work(report)
                except Exception as exc:  # one model's failure is reported, the others still run
                    self._errors.append(f"{what}: {exc}")
            self._fraction = 1.0 if not self._cancel.is_set() else self._fraction
            self._message = "cancelled" if self._cancel.is_set() else "done"
        finally:
            self._finished = time.monotonic()
            self._done.set()

    def cancel(self) -> None:
        """Stop before the next step (a step under way finishes and keeps its result)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def status(self) -> JobStatus:
        elapsed = (self._finished or time.monotonic()) - self._started
        fraction = self._fraction
        eta = elapsed * (1 - fraction) / fraction if 0.02 < fraction < 1 and not self._done.is_set() else None
        return JobStatus(
            fraction, self._message, elapsed, eta, not self._done.is_set(), self._cancel.is_set(), tuple(self._errors)
        )


def robustness_job(checkpoints: Mapping[str, str], data_path: str, keys: Sequence[str], root: Path) -> BackgroundJob:
    """The suite's conditions `keys` on each checkpoint's test faces (id -> the name its step shows), each on the
    backend this machine measured faster for it; not started."""
    from .robustness import checkpoint_run

    def step(checkpoint_id: str) -> Callable[[Report], object]:
        return lambda report: checkpoint_run(
            checkpoint_id, data_path, list(keys), root, "faster", lambda done, total, what: report(done / max(total, 1), what)
        )

    return BackgroundJob("robustness", [(name, step(cid)) for cid, name in checkpoints.items()])


def saliency_job(checkpoints: Mapping[str, str], data_path: str, root: Path) -> BackgroundJob:
    """Each checkpoint's class-average Grad-CAM and region costs over its test faces (id -> the name its step
    shows), the data read as the checkpoint saw it; not started."""
    from ..classifier import load_checkpoint
    from ..store import dataset_for
    from .saliency import class_saliency

    def step(checkpoint_id: str) -> Callable[[Report], object]:
        def work(report: Report) -> object:
            clf = load_checkpoint(checkpoint_id, root)
            return class_saliency(
                clf,
                dataset_for(clf.meta, data_path),
                lambda fraction: report(fraction, "Grad-CAM and occlusion over sampled test faces, class by class"),
            )

        return work

    return BackgroundJob("saliency", [(name, step(cid)) for cid, name in checkpoints.items()])
