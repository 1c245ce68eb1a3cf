"""fit(): a plain, explicit training loop over a dataset held as one uint8 tensor on the device.

No DataLoader: each batch is an index into the on-device tensor, augmented by kornia in one call,
so no per-image Python runs in the hot loop (see bench/train_throughput.py).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..classifier import predict_logits
from ..data import FerData, augment_batch, build_augmentation, to_model_input
from ..input_spec import InputSpec
from .config import TrainConfig
from .targets import training_targets


class TrainingCancelled(Exception):
    """The user asked to stop; nothing is saved."""


DIVERGENCE_CHECK_EVERY = 25  # batches
# Faces augmented per kornia call, by device type. On a GPU one call costs ~1k small kernel launches
# whatever its size, so one call per batch leaves the GPU waiting on Python (bench/train_throughput.py);
# a chunk of batches amortises that. On a CPU larger calls are slower per face (cache): one batch per call.
AUGMENT_CHUNK_IMAGES: dict[str, int] = {"cuda": 4096}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; nothing is saved."""


@dataclass
class EpochStats:
    epoch: int  # 1-based
    epochs: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    images_per_s: float
    epoch_time_s: float
    elapsed_s: float
    best: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


STOP_REASONS = ("completed", "early_stopping", "time_budget")


@dataclass
class FitResult:
    history: list[dict]
    best_epoch: int
    best_state: dict[str, torch.Tensor]
    stop_reason: str  # one of STOP_REASONS
    train_time_s: float
    device: str

    @property
    def stopped_early(self) -> bool:
        return self.stop_reason != "completed"


@dataclass
class Callbacks:
    on_epoch: Callable[[EpochStats], None] | None = None
    # epoch, batch, batches, loss: the loss stays a device tensor, so a callback that does not read it
    # (float(loss)) never forces a GPU sync.
    on_batch: Callable[[int, int, int, torch.Tensor], None] | None = None
    should_stop: Callable[[], bool] | None = None
    on_stage: Callable[[str], None] | None = None  # what a run does before its first epoch (the sidebar shows it)


@dataclass
class _Progress:
    """Everything needed to resume after the last finished epoch."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_metric: float = -math.inf
    best_epoch: int = 0
    best_state: dict | None = None
    elapsed_s: float = 0.0


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Returns (scheduler, per_batch). Cosine steps per batch so warm-up is smooth; the rest per epoch."""
    if cfg.scheduler == "cosine":
        warmup = cfg.warmup_epochs * steps_per_epoch
        total = max(1, cfg.epochs * steps_per_epoch)

        def factor(step: int) -> float:
            return cosine_factor(step, warmup, (step - warmup) / max(1, total - warmup))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), True
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma), False
    if cfg.scheduler == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.gamma), False
    if cfg.scheduler == "plateau":
        mode = "min" if cfg.select_by == "val_loss" else "max"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=cfg.gamma, patience=cfg.plateau_patience), False
    return None, False


def cosine_factor(step: int, warmup_steps: int, progress: float) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay over `progress` in [0, 1]."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, normalised to mean 1 (sklearn's 'balanced' heuristic)."""
    counts = torch.bincount(labels, minlength=num_classes).float().clamp_min(1)
    return counts.sum() / (num_classes * counts)


def _freeze_backbone(model: nn.Module, head: str) -> list[nn.Parameter]:
    head_params = set(id(p) for p in model.get_submodule(head).parameters())
    for p in model.parameters():
        p.requires_grad_(id(p) in head_params)
    return [p for p in model.parameters() if p.requires_grad]


def fit(
    model: nn.Module,
    spec_input: InputSpec,
    head: str,
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
    cuda = device.type == "cuda"
    use_amp = cfg.amp and cuda
    amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    channels_last = cfg.channels_last and cuda
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed 48x48 batches: let cuDNN pick the fastest kernels once
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    params = _freeze_backbone(model, head) if cfg.freeze_backbone else list(model.parameters())

    train_idx, val_idx = data.indices("train"), data.indices("val")
    x_train = data.images[train_idx].to(device)
    y_train = data.labels[train_idx].to(device)
    # Class distributions, built once (mixup blends them like the images).
    targets_train = (targets if targets is not None else training_targets(data, cfg)).to(device)
    x_val, y_val = data.images[val_idx], data.labels[val_idx]
    num_classes = len(data.classes)
    n = len(train_idx)
    if n == 0 or len(val_idx) == 0:
        raise ValueError("training needs non-empty train and val splits")
    # A last batch of a single face is dropped: BatchNorm cannot normalise one sample in training mode.
    steps = n // cfg.batch_size + (1 if n % cfg.batch_size >= 2 else 0)
    seen = min(n, steps * cfg.batch_size)  # faces trained on per epoch

    weights = class_weights(data.labels[train_idx], num_classes).to(device) if cfg.balance == "weighted" else None
    sample_weights = class_weights(y_train, num_classes)[y_train] if cfg.balance == "oversample" else None
    optimizer = make_optimizer(params, cfg)
    budget_s = cfg.time_budget_min * 60 if cfg.time_budget_min else None
    scheduler, per_batch = make_scheduler(optimizer, cfg, steps) if budget_s is None else (None, False)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    crop = spec_input.size if spec_input.fit == "crop" else None
    augmentation = build_augmentation(cfg.augment, crop).to(device)
    step_model = model if cfg.compile == "none" else torch.compile(model, mode=cfg.compile)
    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
    chunk_batches = max(1, AUGMENT_CHUNK_IMAGES.get(device.type, 0) // cfg.batch_size)

    prog = _Progress()
    if state_file is not None and state_file.is_file():
        prog = _load_state(state_file, model, optimizer, scheduler, scaler, generator)

    for epoch in range(prog.epoch + 1, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = (torch.multinomial(sample_weights.cpu(), n, replacement=True, generator=generator)
                 if sample_weights is not None else torch.randperm(n, generator=generator)).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for b in range(steps):
            if cb.should_stop and cb.should_stop():
                raise TrainingCancelled(f"cancelled during epoch {epoch}")
            if budget_s is not None:
                spent = (prog.elapsed_s + time.perf_counter() - t0) / budget_s
                factor = cosine_factor((epoch - 1) * steps + b, cfg.warmup_epochs * steps, spent)
                for group, base in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = base * factor
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            if b % chunk_batches == 0:  # augment, normalise and lay out a whole chunk at once (few kernel launches)
                chunk_idx = order[b * cfg.batch_size : (b + chunk_batches) * cfg.batch_size]
                chunk = augment_batch(augmentation, x_train[chunk_idx].float().div_(255.0))
                chunk = to_model_input(chunk, spec_input, already_cropped=crop is not None)
                if channels_last:
                    chunk = chunk.contiguous(memory_format=torch.channels_last)
            start = (b % chunk_batches) * cfg.batch_size
            x = chunk[start : start + len(idx)]
            y = y_train[idx]
            target = targets_train[idx]
            if cfg.mixup_alpha > 0:
                lam = float(torch.distributions.Beta(cfg.mixup_alpha, cfg.mixup_alpha).sample())
                perm = torch.randperm(len(idx), device=device)
                x = lam * x + (1 - lam) * x[perm]
                target = lam * target + (1 - lam) * target[perm]
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                logits = step_model(x)
                loss = F.cross_entropy(logits.float(), target, weight=weights, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if scheduler is not None and per_batch:
                scheduler.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == y).sum()
            # Checked every few batches, not every one: reading a GPU value waits for the GPU to finish.
            if (b + 1) % DIVERGENCE_CHECK_EVERY == 0 or b + 1 == steps:
                _check_finite(loss_sum, epoch, b + 1, cfg.lr)
            if cb.on_batch:
                cb.on_batch(epoch, b + 1, steps, loss.detach())
        train_time = time.perf_counter() - t0
        val_logits = predict_logits(model, x_val, spec_input, device, channels_last=channels_last)
        val_loss = float(F.cross_entropy(val_logits, y_val))
        val_acc = float((val_logits.argmax(1) == y_val).float().mean())
        lr_now = optimizer.param_groups[0]["lr"]
        if scheduler is not None and not per_batch:
            scheduler.step(val_loss if cfg.select_by == "val_loss" else val_acc) if cfg.scheduler == "plateau" else scheduler.step()
        metric = -val_loss if cfg.select_by == "val_loss" else val_acc
        improved = metric > prog.best_metric
        if improved:
            prog.best_metric, prog.best_epoch = metric, epoch
            prog.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        prog.elapsed_s += time.perf_counter() - t0
        stats = EpochStats(
            epoch=epoch, epochs=cfg.epochs, train_loss=float(loss_sum) / seen, train_acc=float(correct) / seen,
            val_loss=val_loss, val_acc=val_acc, lr=lr_now, images_per_s=seen / train_time,
            epoch_time_s=time.perf_counter() - t0, elapsed_s=prog.elapsed_s, best=improved,
        )
        prog.history.append(stats.to_dict())
        prog.epoch = epoch
        if state_file is not None:
            _save_state(state_file, prog, model, optimizer, scheduler, scaler, generator)
        if cb.on_epoch:
            cb.on_epoch(stats)
        if cfg.early_stopping and epoch - prog.best_epoch >= cfg.early_stopping:
            return _result(prog, "early_stopping", device)
        if budget_s is not None and prog.elapsed_s + stats.epoch_time_s > budget_s:
            return _result(prog, "time_budget", device)
    return _result(prog, "completed", device)


def _check_finite(loss_sum: torch.Tensor, epoch: int, batch: int, lr: float) -> None:
    if not torch.isfinite(loss_sum):
        raise TrainingDiverged(
            f"loss became {loss_sum.item()} in epoch {epoch} (by batch {batch}): lower the learning rate (now {lr})"
        )


def _result(prog: _Progress, reason: str, device: torch.device) -> FitResult:
    assert prog.best_state is not None
    return FitResult(prog.history, prog.best_epoch, prog.best_state, reason, prog.elapsed_s, str(device))


def _save_state(path: Path, prog: _Progress, model, optimizer, scheduler, scaler, generator) -> None:
    """Atomically write the resume state (plain tensors and containers: loadable with weights_only=True)."""
    state = {
        "epoch": prog.epoch,
        "history": prog.history,
        "best_metric": prog.best_metric,
        "best_epoch": prog.best_epoch,
        "best_state": prog.best_state,
        "elapsed_s": prog.elapsed_s,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _load_state(path: Path, model, optimizer, scheduler, scaler, generator) -> _Progress:
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return _Progress(state["epoch"], state["history"], state["best_metric"], state["best_epoch"], state["best_state"], state["elapsed_s"])
