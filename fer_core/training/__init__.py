"""Training: the fit() loop, recipes per family, full runs that end in a checkpoint, background jobs."""

from .config import BALANCING, OPTIMIZERS, SCHEDULERS, TrainConfig
from .loop import Callbacks, EpochStats, FitResult, TrainingCancelled, TrainingDiverged, fit
from .presets import PRESETS, make_config, preset_for
from .run import train_and_save

__all__ = [
    "BALANCING", "OPTIMIZERS", "PRESETS", "SCHEDULERS", "Callbacks", "EpochStats", "FitResult", "TrainConfig",
    "TrainingCancelled", "TrainingDiverged", "fit", "make_config", "preset_for", "train_and_save",
]
