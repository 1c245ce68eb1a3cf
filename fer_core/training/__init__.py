"""Training: the fit() loop, recipes per family, full runs that end in a checkpoint, background jobs.

Names load on first use: the options, presets and job files the sidebar needs are torch-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "BALANCING": "config",
    "COMPILE_MODES": "config",
    "OPTIMIZERS": "config",
    "PRECISIONS": "config",
    "SCHEDULERS": "config",
    "TrainConfig": "config",
    "Callbacks": "loop",
    "FitResult": "loop",
    "fit": "loop",
    "TrainingCancelled": "errors",
    "TrainingDiverged": "errors",
    "PRESETS": "presets",
    "config_from": "presets",
    "make_config": "presets",
    "preset_for": "presets",
    "train_and_save": "run",
}
__all__ = [
    "BALANCING",
    "COMPILE_MODES",
    "Callbacks",
    "FitResult",
    "OPTIMIZERS",
    "PRECISIONS",
    "PRESETS",
    "SCHEDULERS",
    "TrainConfig",
    "TrainingCancelled",
    "TrainingDiverged",
    "config_from",
    "fit",
    "make_config",
    "preset_for",
    "train_and_save",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .config import BALANCING, COMPILE_MODES, OPTIMIZERS, PRECISIONS, SCHEDULERS, TrainConfig
    from .errors import TrainingCancelled, TrainingDiverged
    from .loop import Callbacks, FitResult, fit
    from .presets import PRESETS, config_from, make_config, preset_for
    from .run import train_and_save
