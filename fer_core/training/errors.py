"""Why a run ended without a checkpoint. Raised by the loop, by the teachers' pass and by runs; nothing is saved."""

from __future__ import annotations


class TrainingCancelled(Exception):
    """The user asked to stop."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""
