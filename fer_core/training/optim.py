"""Optimizers and learning-rate schedules by name: one factory table each, and an unknown name is an error."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ExponentialLR, LambdaLR, LRScheduler, ReduceLROnPlateau, StepLR

from .config import TrainConfig

Params = Iterable[torch.nn.Parameter]

OPTIMIZER_FACTORIES: dict[str, Callable[[Params, TrainConfig], Optimizer]] = {
    "adam": lambda params, cfg: torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
    "adamw": lambda params, cfg: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
    "sgd": lambda params, cfg: torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
    ),
    "rmsprop": lambda params, cfg: torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay),
}


def make_optimizer(params: Params, cfg: TrainConfig) -> Optimizer:
    factory = OPTIMIZER_FACTORIES.get(cfg.optimizer)
    if factory is None:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; known: {', '.join(OPTIMIZER_FACTORIES)}")
    return factory(params, cfg)


def cosine_factor(step: int, warmup_steps: int, progress: float) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay over `progress` in [0, 1]."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))


@dataclass
class Schedule:
    """A torch scheduler and when it steps: after every batch (cosine, smooth warm-up) or after every epoch."""

    scheduler: LRScheduler | ReduceLROnPlateau | None
    per_batch: bool = False

    def after_batch(self) -> None:
        if self.scheduler is not None and self.per_batch:
            self.scheduler.step()

    def after_epoch(self, selection_metric: float) -> None:
        """`selection_metric` is what the run selects on (ReduceLROnPlateau watches it)."""
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(selection_metric)
        elif self.scheduler is not None and not self.per_batch:
            self.scheduler.step()


def _cosine(optimizer: Optimizer, cfg: TrainConfig, steps_per_epoch: int, progress: Callable[[int], float]) -> Schedule:
    warmup = cfg.warmup_epochs * steps_per_epoch
    return Schedule(LambdaLR(optimizer, lambda step: cosine_factor(step, warmup, progress(step))), per_batch=True)


def _plateau(optimizer: Optimizer, cfg: TrainConfig) -> Schedule:
    mode: Literal["min", "max"] = "min" if cfg.select_by == "val_loss" else "max"
    return Schedule(ReduceLROnPlateau(optimizer, mode=mode, factor=cfg.gamma, patience=cfg.plateau_patience))


ScheduleFactory = Callable[[Optimizer, TrainConfig, int, Callable[[], float] | None], Schedule]

SCHEDULE_FACTORIES: dict[str, ScheduleFactory] = {
    "none": lambda opt, cfg, steps, clock: Schedule(None),
    "cosine": lambda opt, cfg, steps, clock: _cosine(
        opt,
        cfg,
        steps,
        (lambda step: clock())
        if clock is not None  # a time budget: cosine over the share of the budget spent
        else (lambda step: (step - cfg.warmup_epochs * steps) / max(1, (cfg.epochs - cfg.warmup_epochs) * steps)),
    ),
    "step": lambda opt, cfg, steps, clock: Schedule(StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)),
    "exponential": lambda opt, cfg, steps, clock: Schedule(ExponentialLR(opt, gamma=cfg.gamma)),
    "plateau": lambda opt, cfg, steps, clock: _plateau(opt, cfg),
}


def make_schedule(
    optimizer: Optimizer, cfg: TrainConfig, steps_per_epoch: int, budget_spent: Callable[[], float] | None = None
) -> Schedule:
    """`budget_spent` returns the share of a time budget used so far (0..1): the cosine then runs over time."""
    factory = SCHEDULE_FACTORIES.get(cfg.scheduler)
    if factory is None:
        raise ValueError(f"unknown scheduler {cfg.scheduler!r}; known: {', '.join(SCHEDULE_FACTORIES)}")
    return factory(optimizer, cfg, steps_per_epoch, budget_spent)
