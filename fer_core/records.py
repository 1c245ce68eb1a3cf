"""What a checkpoint records, as typed, frozen records (torch-free): meta.json and the stored test predictions.

`CheckpointMeta` is to a checkpoint what torchvision's `Weights` meta or timm's `PretrainedCfg` is to their
weights: one object that the store writes and reads, so no module reads meta.json by string keys. Files
written by earlier versions load too: `from_json` accepts their spellings (see `_upgrade`) and keeps keys it
does not know in `extra`, so rewriting an annotated file never drops what another version wrote.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np

from .input_spec import InputSpec
from .training.config import TrainConfig

# What ended a run: its epoch limit, early stopping, or its wall-clock budget (TrainConfig.time_budget_min).
StopReason = Literal["epochs", "early_stopping", "time_budget"]
STOP_REASONS: tuple[StopReason, ...] = ("epochs", "early_stopping", "time_budget")


@dataclass(frozen=True)
class EpochStats:
    """One finished epoch: a line of a run's history (meta.json, the job's progress.jsonl, the curves)."""

    epoch: int  # 1-based
    epochs: int  # the run's epoch limit (an upper bound when the run has a time budget)
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float  # the learning rate at the end of the epoch
    images_per_s: float
    epoch_time_s: float
    elapsed_s: float
    best: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpochStats:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass(frozen=True)
class DataProvenance:
    """The data a model was trained and tested on: equal fingerprints mean the same faces, labels and splits."""

    source: str  # file or folder name, not the full path
    fingerprint: str
    label_source: str  # "fer2013" or "ferplus"
    split_method: str
    split_sizes: dict[str, int]
    classes: tuple[str, ...]


@dataclass(frozen=True)
class TestMetrics:
    """The headline test figures stored in meta.json (all other views are computed from stored predictions)."""

    n: int
    accuracy: float
    loss: float
    macro_f1: float
    weighted_f1: float
    top2_accuracy: float
    ece: float
    micro_auc: float
    per_class_accuracy: dict[str, float]


@dataclass(frozen=True)
class Efficiency:
    """Cost of one model on a CPU, stamped with the machine it was measured on."""

    macs: int  # multiply-accumulates for one face
    latency_ms_b1: float  # median latency at batch 1
    throughput_per_s: float  # images per second at `throughput_batch`
    throughput_batch: int
    threads: int
    measured_on: str
    processor: str
    measured_at: str


@dataclass(frozen=True)
class CheckpointRef:
    """Another checkpoint this run used: the one it started from (`init_from`), or a teacher."""

    id: str
    model: str
    data_fingerprint: str
    test_accuracy: float | None


@dataclass(frozen=True)
class Interval:
    """A 95% confidence interval (of an accuracy, a share, an mCE)."""

    low: float
    high: float

    def points(self) -> str:
        """A share's interval in percentage points, as tables print it: `70.4 – 73.4`."""
        return f"{100 * self.low:.1f} – {100 * self.high:.1f}"


@dataclass(frozen=True)
class StudyTrial:
    """What a checkpoint was within a study: the study run, its trial, the point of the axes and the seed."""

    study_id: str
    study: str  # the study file's name
    profile: str
    trial: str
    point: dict[str, Any]  # axis -> value
    seed: int


@dataclass(frozen=True)
class CheckpointMeta:
    """meta.json: everything needed to rebuild, judge and reproduce a trained model."""

    id: str
    model: str  # registry name
    family: str
    reference: str
    classes: tuple[str, ...]
    input: InputSpec
    config: TrainConfig
    seed: int
    data: DataProvenance
    versions: dict[str, str]
    git_commit: str | None
    created_at: str
    started_at: str
    device: str
    device_name: str
    train_time_s: float
    best_epoch: int
    stop_reason: StopReason
    history: tuple[EpochStats, ...]
    parameters: int
    test_metrics: TestMetrics
    test_split: str = "test"
    weights_dtype: str = "float16"
    init_from: CheckpointRef | None = None
    teachers: tuple[CheckpointRef, ...] = ()
    efficiency: Efficiency | None = None
    card: str = ""
    study: StudyTrial | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys of other versions, kept as they were

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def stopped_early(self) -> bool:
        """True only when early stopping ended the run (not its epoch limit or its time budget)."""
        return self.stop_reason == "early_stopping"

    @property
    def accuracy(self) -> float:
        return self.test_metrics.accuracy

    def to_json(self) -> dict[str, Any]:
        """The meta.json object: optional facts a run does not have are left out, derived facts written too (for
        readers of the plain file), and keys of other versions kept."""
        facts = {k: v for k, v in asdict(self).items() if k != "extra" and v not in (None, "", ())}
        return {**self.extra, **facts, "epochs_run": self.epochs_run, "stopped_early": self.stopped_early}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CheckpointMeta:
        """Parse a meta.json object; raises KeyError, TypeError or ValueError when it does not fit."""
        d = _upgrade(dict(raw))
        known = {f.name for f in fields(cls)}
        derived = {"epochs_run", "stopped_early"}
        data = dict(d["data"])
        return cls(
            id=d["id"],
            model=d["model"],
            family=d.get("family", ""),
            reference=d.get("reference", ""),
            classes=tuple(d["classes"]),
            input=InputSpec(**d["input"]),
            config=TrainConfig.from_dict(d["config"]),
            seed=int(d["seed"]),
            data=DataProvenance(**{**data, "classes": tuple(data.get("classes") or d["classes"])}),
            versions=dict(d.get("versions") or {}),
            git_commit=d.get("git_commit"),
            created_at=d.get("created_at", ""),
            started_at=d.get("started_at", ""),
            device=d.get("device", ""),
            device_name=d.get("device_name", ""),
            train_time_s=float(d.get("train_time_s", 0.0)),
            best_epoch=int(d.get("best_epoch", 0)),
            stop_reason=_stop_reason(d["stop_reason"]),
            history=tuple(EpochStats.from_dict(e) for e in d.get("history") or ()),
            parameters=int(d.get("parameters", 0)),
            test_metrics=TestMetrics(**d["test_metrics"]),
            test_split=d.get("test_split", "test"),
            weights_dtype=d.get("weights_dtype", "float16"),
            init_from=CheckpointRef(**d["init_from"]) if d.get("init_from") else None,
            teachers=tuple(CheckpointRef(**t) for t in d.get("teachers") or ()),
            efficiency=Efficiency(**d["efficiency"]) if d.get("efficiency") else None,
            card=d.get("card") or "",
            study=StudyTrial(**d["study"]) if d.get("study") else None,
            extra={k: v for k, v in d.items() if k not in known | derived},
        )


def _stop_reason(value: str) -> StopReason:
    for reason in STOP_REASONS:
        if value == reason:
            return reason
    raise ValueError(f"stop_reason must be one of {STOP_REASONS}, not {value!r}")


def _upgrade(d: dict[str, Any]) -> dict[str, Any]:
    """Spellings of earlier versions -> today's."""
    if d.get("stop_reason") in (None, "completed"):  # "completed": ran out its epochs; absent before stop reasons
        d["stop_reason"] = "early_stopping" if d.get("stop_reason") is None and d.get("stopped_early") else "epochs"
    eff = d.get("efficiency")
    if isinstance(eff, dict) and "throughput_b256" in eff:  # measured at batch 256 whatever its name said
        eff = {k: v for k, v in eff.items() if k != "throughput_b256"}
        d["efficiency"] = {**eff, "throughput_per_s": d["efficiency"]["throughput_b256"], "throughput_batch": 256}
    if isinstance(d.get("init_from"), dict):  # written before it named its model: always this run's
        d["init_from"] = {"model": d["model"], **d["init_from"]}
    return d


@dataclass(frozen=True)
class Predictions:
    """What a model said about a set of faces: probabilities (N, C) in `classes` order, the true labels and the
    faces' names (file names in the dataset), so two models' predictions can be matched face by face."""

    probs: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    classes: tuple[str, ...]
    split: str = "test"
    data_fingerprint: str = ""

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(1)

    @property
    def accuracy(self) -> float:
        return float((self.predicted == self.labels).mean()) if len(self.labels) else float("nan")
