"""fit(): a plain, explicit training loop over a dataset held as one uint8 tensor on the device.

Laid out like torchvision's reference script: `train_one_epoch`, `evaluate`, and `fit` holding a small
`RunState` (what a resumed run needs). No DataLoader: each batch is an index into the on-device tensor,
augmented by kornia in one call, so no per-image Python runs in the hot loop (bench/train_throughput.py).
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import write_atomically
from ..data import FerData, augment_batch, build_augmentation, to_model_input
from ..inference import predict_logits
from ..models import ModelSpec
from ..records import EpochStats, StopReason
from .config import TrainConfig
from .errors import TrainingCancelled, TrainingDiverged
from .optim import Schedule, make_optimizer, make_schedule
from .targets import training_targets

DIVERGENCE_CHECK_EVERY = 25  # batches
# Faces augmented per kornia call, by device type. On a GPU one call costs ~1k small kernel launches
# whatever its size, so one call per batch leaves the GPU waiting on Python (bench/train_throughput.py);
# a chunk of batches amortises that. On a CPU larger calls are slower per face (cache): one batch per call.
AUGMENT_CHUNK_IMAGES: dict[str, int] = {"cuda": 4096}


@dataclass(frozen=True)
class FitResult:
    history: list[EpochStats]
    best_epoch: int
    best_state: dict[str, torch.Tensor]
    stop_reason: StopReason
    train_time_s: float
    device: str


@dataclass
class Callbacks:
    on_epoch: Callable[[EpochStats], None] | None = None
    # epoch, batch, batches, loss: the loss stays a device tensor, so a callback that does not read it
    # (float(loss)) never forces a GPU sync.
    on_batch: Callable[[int, int, int, torch.Tensor], None] | None = None
    should_stop: Callable[[], bool] | None = None
    on_stage: Callable[[str], None] | None = None  # what a run does before its first epoch (the sidebar shows it)

    def stop_if_asked(self, during: str) -> None:
        """Raise TrainingCancelled when the user asked to stop: looked at between batches of every pass."""
        if self.should_stop and self.should_stop():
            raise TrainingCancelled(f"cancelled during {during}")


@dataclass
class RunState:
    """Everything needed to resume after the last finished epoch."""

    epoch: int = 0
    history: list[EpochStats] = field(default_factory=list)
    best_metric: float = -math.inf
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    elapsed_s: float = 0.0  # training time of the finished epochs
    epoch_started: float = 0.0  # time.perf_counter() when the running epoch began

    def elapsed_now(self) -> float:
        """Training time so far, the running epoch included (what a time budget is spent against)."""
        return self.elapsed_s + time.perf_counter() - self.epoch_started


@dataclass
class Trainer:
    """The model and what updates it, set up once per run for one device."""

    model: nn.Module
    step_model: Callable[[torch.Tensor], torch.Tensor]  # the model, or its torch.compile'd wrapper
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None  # None: no autocast
    channels_last: bool


@dataclass
class TrainingFaces:
    """The training split on the device, its targets, and how it is cut into batches."""

    images: torch.Tensor  # uint8 (N,1,48,48)
    labels: torch.Tensor
    targets: torch.Tensor  # (N, C) class distributions trained towards (targets.py)
    sample_weights: torch.Tensor | None  # oversampling: draw faces by inverse class frequency
    class_weights: torch.Tensor | None  # weighted loss
    augmentation: nn.Module
    crop: int | None  # the augmentation's random crop (the FER VGG's 40x40), so inference centre-crops
    batch_size: int
    chunk_batches: int  # batches augmented per kornia call

    @property
    def steps(self) -> int:
        """Batches per epoch; a last batch of a single face is dropped (BatchNorm cannot normalise one sample)."""
        n = len(self.labels)
        return n // self.batch_size + (1 if n % self.batch_size >= 2 else 0)

    @property
    def seen(self) -> int:
        return min(len(self.labels), self.steps * self.batch_size)


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, normalised to mean 1 (sklearn's 'balanced' heuristic)."""
    counts = torch.bincount(labels, minlength=num_classes).float().clamp_min(1)
    return counts.sum() / (num_classes * counts)


def _trainable(model: nn.Module, spec: ModelSpec, freeze_backbone: bool) -> list[nn.Parameter]:
    if not freeze_backbone:
        return list(model.parameters())
    head_params = {id(p) for p in model.get_submodule(spec.head).parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in head_params)
    return [p for p in model.parameters() if p.requires_grad]


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse bf16 where it would not run, so a checkpoint never records a precision it was not trained in; the
    run calls this before it reads data or asks teachers, so the refusal comes at once."""
    if precision == "bf16" and device.type not in ("cuda", "cpu"):
        raise ValueError(f"precision: bf16 runs on a CUDA GPU or the CPU, not on {device.type}; use auto or fp32")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """What the forward pass autocasts to, None for float32 (MPS in auto: its autocast gains little)."""
    check_precision(precision, device)
    if precision == "fp32" or device.type not in ("cuda", "cpu"):
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """The forward pass's autocast context for `autocast_dtype`'s answer (disabled for None: float32)."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def make_trainer(
    model: nn.Module,
    spec: ModelSpec,
    cfg: TrainConfig,
    device: torch.device,
    steps_per_epoch: int,
    budget_spent: Callable[[], float] | None,
) -> Trainer:
    cuda = device.type == "cuda"
    amp_dtype = autocast_dtype(cfg.precision, device)
    channels_last = cfg.channels_last and device.type in ("cuda", "cpu")
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed 48x48 batches: let cuDNN pick the fastest kernels once
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    params = _trainable(model, spec, cfg.freeze_backbone)
    optimizer = make_optimizer(params, cfg)
    return Trainer(
        model=model,
        step_model=model if cfg.compile == "none" else torch.compile(model, mode=cfg.compile),
        params=params,
        optimizer=optimizer,
        schedule=make_schedule(optimizer, cfg, steps_per_epoch, budget_spent),
        scaler=torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16),
        device=device,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
    )


def training_faces(
    data: FerData, spec: ModelSpec, cfg: TrainConfig, device: torch.device, targets: torch.Tensor | None
) -> TrainingFaces:
    train_idx = data.indices("train")
    if len(train_idx) == 0 or len(data.indices("val")) == 0:
        raise ValueError("training needs non-empty train and val splits")
    labels = data.labels[train_idx].to(device)
    num_classes = len(data.classes)
    crop = spec.input.size if spec.input.fit == "crop" else None
    return TrainingFaces(
        images=data.images[train_idx].to(device),
        labels=labels,
        targets=(targets if targets is not None else training_targets(data, cfg)).to(device),
        sample_weights=class_weights(labels, num_classes)[labels].cpu() if cfg.balance == "oversample" else None,
        class_weights=class_weights(labels, num_classes) if cfg.balance == "weighted" else None,
        augmentation=build_augmentation(cfg.augment, crop).to(device),
        crop=crop,
        batch_size=cfg.batch_size,
        chunk_batches=max(1, AUGMENT_CHUNK_IMAGES.get(device.type, 0) // cfg.batch_size),
    )


def _epoch_order(faces: TrainingFaces, generator: torch.Generator) -> torch.Tensor:
    n = len(faces.labels)
    if faces.sample_weights is not None:
        return torch.multinomial(faces.sample_weights, n, replacement=True, generator=generator)
    return torch.randperm(n, generator=generator)


def _augmented_chunk(faces: TrainingFaces, chunk_idx: torch.Tensor, spec: ModelSpec, channels_last: bool) -> torch.Tensor:
    """Augment, normalise and lay out several batches at once (few kernel launches on a GPU)."""
    chunk = augment_batch(faces.augmentation, faces.images[chunk_idx].float().div_(255.0))
    chunk = to_model_input(chunk, spec.input, already_cropped=faces.crop is not None)
    return chunk.contiguous(memory_format=torch.channels_last) if channels_last else chunk


def train_one_epoch(
    trainer: Trainer,
    faces: TrainingFaces,
    spec: ModelSpec,
    cfg: TrainConfig,
    epoch: int,
    generator: torch.Generator,
    callbacks: Callbacks,
) -> tuple[float, float]:
    """One pass over the training faces; returns the mean training loss and accuracy."""
    trainer.model.train()
    device, bs, steps = trainer.device, faces.batch_size, faces.steps
    order = _epoch_order(faces, generator).to(device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    chunk = torch.empty(0)
    for b in range(steps):
        callbacks.stop_if_asked(f"epoch {epoch}")
        idx = order[b * bs : (b + 1) * bs]
        if b % faces.chunk_batches == 0:
            chunk = _augmented_chunk(faces, order[b * bs : (b + faces.chunk_batches) * bs], spec, trainer.channels_last)
        start = (b % faces.chunk_batches) * bs
        x, target = chunk[start : start + len(idx)], faces.targets[idx]
        if cfg.mixup_alpha > 0:
            lam = float(torch.distributions.Beta(cfg.mixup_alpha, cfg.mixup_alpha).sample())
            perm = torch.randperm(len(idx), device=device)
            x = lam * x + (1 - lam) * x[perm]
            target = lam * target + (1 - lam) * target[perm]
        loss, logits = _step(trainer, x, target, faces.class_weights, cfg)
        loss_sum += loss * len(idx)
        correct += (logits.argmax(1) == faces.labels[idx]).sum()
        # Checked every few batches, not every one: reading a GPU value waits for the GPU to finish.
        if (b + 1) % DIVERGENCE_CHECK_EVERY == 0 or b + 1 == steps:
            _check_finite("loss", loss_sum, f"epoch {epoch}, batch {b + 1}", trainer.optimizer.param_groups[0]["lr"])
        if callbacks.on_batch:
            callbacks.on_batch(epoch, b + 1, steps, loss)
    return float(loss_sum) / faces.seen, float(correct) / faces.seen


def _step(
    trainer: Trainer, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, cfg: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step; returns the (detached) loss and the logits."""
    with autocast(trainer.device, trainer.amp_dtype):
        logits = trainer.step_model(x)
        loss = F.cross_entropy(logits.float(), target, weight=weight, label_smoothing=cfg.label_smoothing)
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.scaler.scale(loss).backward()
    if cfg.grad_clip:
        trainer.scaler.unscale_(trainer.optimizer)
        nn.utils.clip_grad_norm_(trainer.params, cfg.grad_clip)
    trainer.scaler.step(trainer.optimizer)
    trainer.scaler.update()
    trainer.schedule.after_batch()
    return loss.detach(), logits


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    spec: ModelSpec,
    device: torch.device,
    channels_last: bool = False,
    between_batches: Callable[[], None] | None = None,
) -> tuple[float, float]:
    """Loss and accuracy on held-out faces (the validation split during training)."""
    logits = predict_logits(model, images, spec.input, device, channels_last=channels_last, between_batches=between_batches)
    return float(F.cross_entropy(logits, labels)), float((logits.argmax(1) == labels).float().mean())


def fit(
    model: nn.Module,
    spec: ModelSpec,
    data: FerData,
    cfg: TrainConfig,
    device: torch.device,
    callbacks: Callbacks | None = None,
    state_file: Path | None = None,
    targets: torch.Tensor | None = None,
) -> FitResult:
    """Train `model` on data's train split, select on val; resumes from `state_file` when it exists.

    `targets` are the class distributions the training faces are trained towards (targets.py); by
    default their labels, or FER+ vote shares with `cfg.soft_labels`.

    With `cfg.time_budget_min` the cosine schedule runs over wall-clock time instead of epochs and
    training ends before the epoch that would overrun the budget: a fixed GPU lease gets a fully
    annealed model whatever the machine's speed (`cfg.epochs` stays an upper bound).
    """
    cb = callbacks or Callbacks()
    torch.manual_seed(cfg.seed)
    faces = training_faces(data, spec, cfg, device, targets)
    run = RunState(epoch_started=time.perf_counter())
    budget_s = cfg.time_budget_min * 60 if cfg.time_budget_min else None
    spent = (lambda: run.elapsed_now() / budget_s) if budget_s else None
    trainer = make_trainer(model, spec, cfg, device, faces.steps, spent)
    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
    if state_file is not None and state_file.is_file():
        _load_state(state_file, trainer, generator, run)
    x_val, y_val = data.take("val")
    for epoch in range(run.epoch + 1, cfg.epochs + 1):
        run.epoch_started = time.perf_counter()
        train_loss, train_acc = train_one_epoch(trainer, faces, spec, cfg, epoch, generator, cb)
        train_time = time.perf_counter() - run.epoch_started
        cancel = functools.partial(cb.stop_if_asked, f"validation after epoch {epoch}")
        val_loss, val_acc = evaluate(model, x_val, y_val, spec, device, trainer.channels_last, cancel)
        lr = trainer.optimizer.param_groups[0]["lr"]
        # The last step can break the weights after the last finite training loss: such weights must never be kept.
        _check_finite("validation loss", torch.tensor(val_loss), f"epoch {epoch}", lr)
        metric = -val_loss if cfg.select_by == "val_loss" else val_acc
        trainer.schedule.after_epoch(val_loss if cfg.select_by == "val_loss" else val_acc)
        improved = metric > run.best_metric
        if improved:
            run.best_metric, run.best_epoch = metric, epoch
            run.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        epoch_time = time.perf_counter() - run.epoch_started
        run.elapsed_s += epoch_time
        stats = EpochStats(
            epoch=epoch,
            epochs=cfg.epochs,
            train_loss=train_loss,
            train_acc=train_acc,
            val_loss=val_loss,
            val_acc=val_acc,
            lr=lr,
            images_per_s=faces.seen / train_time,
            epoch_time_s=epoch_time,
            elapsed_s=run.elapsed_s,
            best=improved,
        )
        run.history.append(stats)
        run.epoch = epoch
        if state_file is not None:
            _save_state(state_file, run, trainer, generator)
        if cb.on_epoch:
            cb.on_epoch(stats)
        if cfg.early_stopping and epoch - run.best_epoch >= cfg.early_stopping:
            return _result(run, "early_stopping", device)
        if budget_s is not None and run.elapsed_s + epoch_time > budget_s:
            return _result(run, "time_budget", device)
    return _result(run, "epochs", device)


def _check_finite(what: str, loss: torch.Tensor, at: str, lr: float) -> None:
    """One message wherever a run diverges (sidebar, CLI, study trial): what broke, when, and what to do."""
    if not torch.isfinite(loss):
        value = "NaN" if torch.isnan(loss) else "infinite"
        raise TrainingDiverged(f"{what} became {value} at {at} (lr {lr:.3g}): lower the learning rate")


def _result(run: RunState, reason: StopReason, device: torch.device) -> FitResult:
    assert run.best_state is not None
    return FitResult(run.history, run.best_epoch, run.best_state, reason, run.elapsed_s, str(device))


def _save_state(path: Path, run: RunState, trainer: Trainer, generator: torch.Generator) -> None:
    """Atomically write the resume state (plain tensors and containers: loadable with weights_only=True)."""
    scheduler = trainer.schedule.scheduler
    state = {
        "epoch": run.epoch,
        "history": [e.to_dict() for e in run.history],
        "best_metric": run.best_metric,
        "best_epoch": run.best_epoch,
        "best_state": run.best_state,
        "elapsed_s": run.elapsed_s,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": trainer.scaler.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    write_atomically(path, lambda tmp: torch.save(state, tmp))


def _load_state(path: Path, trainer: Trainer, generator: torch.Generator, run: RunState) -> None:
    """Restore the trainer, the generator and `run` (in place: the time budget's clock reads it) from `path`."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    scheduler = trainer.schedule.scheduler
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    trainer.scaler.load_state_dict(state["scaler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    run.epoch, run.best_metric, run.best_epoch = state["epoch"], state["best_metric"], state["best_epoch"]
    run.history = [EpochStats.from_dict(e) for e in state["history"]]
    run.best_state, run.elapsed_s = state["best_state"], state["elapsed_s"]
