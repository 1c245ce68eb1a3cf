"""TrainConfig: every knob of a run, stored whole in the checkpoint's meta.json."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields
from numbers import Real
from typing import Any, get_args, get_type_hints

from ..data.choices import AUGMENT_PRESETS
from ..models.registry import ACTIVATIONS, NORMS, STYLE_DEFAULTS, get_spec

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULERS = ("none", "step", "exponential", "cosine", "plateau")
BALANCING = ("none", "weighted", "oversample")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
# auto: bf16 (fp16 where unsupported) autocast on CUDA, float32 elsewhere; bf16: autocast on the CPU too, which pays
# on cores with native bf16 (AMX, AVX512-BF16) for plain conv nets and not for depthwise ones (bench/RESULTS.md)
PRECISIONS = ("auto", "fp32", "bf16")
SELECT_BY = ("val_loss", "val_acc")


@dataclass(frozen=True)
class TrainConfig:
    model: str
    data: str = ""
    labels: str = "fer2013"  # or "ferplus"
    soft_labels: bool = False  # FER+ only: train on the vote distribution instead of the majority
    classes: tuple[str, ...] | None = None  # subset, e.g. without disgust
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    warmup_epochs: int = 1
    step_size: int = 10
    gamma: float = 0.1
    plateau_patience: int = 5
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    grad_clip: float | None = None
    early_stopping: int | None = None  # epochs without improvement before stopping
    time_budget_min: float | None = None  # wall-clock budget: cosine over time, epochs become an upper bound
    select_by: str = "val_acc"
    augment: str = "light"
    balance: str = "none"
    pretrained: bool | str = False  # True: torchvision ImageNet weights; str: a local weights file
    freeze_backbone: bool = False
    init_from: str | None = None  # a checkpoint (id or folder) of the same model and classes to start from
    teachers: tuple[str, ...] = ()  # checkpoints whose mean prediction on each training face joins its target
    teacher_weight: float = 0.5  # share of the teachers' prediction in the target; the rest is the label
    precision: str = "auto"  # the forward pass's autocast (PRECISIONS); weights and optimiser stay float32
    channels_last: bool = True  # on CUDA and the CPU (oneDNN's preferred layout; measured never slower), not MPS
    compile: str = "none"  # torch.compile mode; "reduce-overhead" adds CUDA graphs (launch-bound small nets)
    seed: int = 0
    device: str = "auto"
    val_fraction: float = 0.1  # for datasets without an official validation split
    train_fraction: float = 1.0  # a stratified share of the training faces (studies' quick profiles)
    activation: str = "relu"  # ablation knobs of the custom FER CNNs (models.custom.Style); torchvision families
    norm: str = "batch"  # refuse anything but these defaults
    dropout: float | None = None  # every dropout layer's rate; None: the architecture's own
    blur_pool: bool = False  # custom FER CNNs only: anti-aliased downsampling (models.custom.Style)

    def __post_init__(self) -> None:
        for name, optional in _number_fields().items():  # a study file or config.json can hold "abc" where 0.01 belongs
            value = getattr(self, name)
            if not (value is None and optional) and (isinstance(value, bool) or not isinstance(value, Real)):
                raise ValueError(f"{name} must be a number, not {value!r}")
        checks = [
            (self.optimizer, OPTIMIZERS, "optimizer"),
            (self.scheduler, SCHEDULERS, "scheduler"),
            (self.balance, BALANCING, "balance"),
            (self.select_by, SELECT_BY, "select_by"),
            (self.labels, ("fer2013", "ferplus"), "labels"),
            (self.compile, COMPILE_MODES, "compile"),
            (self.precision, PRECISIONS, "precision"),
            (self.activation, ACTIVATIONS, "activation"),
            (self.norm, NORMS, "norm"),
            (self.augment, AUGMENT_PRESETS, "augment"),
        ]
        for value, allowed, name in checks:
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {value!r}")
        if self.architecture() != STYLE_DEFAULTS:  # refused here, not minutes later when the model is built
            get_spec(self.model).style_options(self.architecture())
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
        if self.time_budget_min is not None and (self.time_budget_min <= 0 or self.scheduler != "cosine"):
            raise ValueError("a time budget needs a positive number of minutes and the cosine scheduler")
        if self.init_from and self.pretrained:
            raise ValueError("init_from and pretrained are alternatives: start from a checkpoint or from ImageNet")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ValueError("train_fraction must be in (0, 1]")
        if not 0.0 < self.teacher_weight <= 1.0:
            raise ValueError("teacher_weight must be in (0, 1]")
        if self.soft_labels and self.labels != "ferplus":
            raise ValueError("soft labels exist only for FER+ (labels='ferplus')")

    def architecture(self) -> dict[str, Any]:
        """What the model is built with besides its registry entry (ModelSpec.build's knobs)."""
        return {"activation": self.activation, "norm": self.norm, "dropout": self.dropout, "blur_pool": self.blur_pool}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = list(self.classes) if self.classes else None
        d["teachers"] = list(self.teachers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        if kwargs.get("classes"):
            kwargs["classes"] = tuple(kwargs["classes"])
        kwargs["teachers"] = tuple(kwargs.get("teachers") or ())
        if "amp" in d and "precision" not in d:  # configs written before precisions: amp meant autocast on CUDA
            kwargs["precision"] = "auto" if d["amp"] else "fp32"
        if isinstance(kwargs.get("compile"), bool):  # configs written before compile modes existed
            kwargs["compile"] = "default" if kwargs["compile"] else "none"
        return cls(**kwargs)


@functools.cache
def _number_fields() -> dict[str, bool]:
    """TrainConfig's int and float fields (read from its annotations, so a new one is checked too) -> whether None
    is allowed."""
    hints = get_type_hints(TrainConfig)
    found = {}
    for f in fields(TrainConfig):
        kinds = set(get_args(hints[f.name])) or {hints[f.name]}
        if kinds - {type(None)} and kinds - {type(None)} <= {int, float}:
            found[f.name] = type(None) in kinds
    return found
