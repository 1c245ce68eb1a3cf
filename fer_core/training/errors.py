"""Why a run ended without a checkpoint. Raised by the loop, by the teachers' pass and by runs; nothing is saved."""

from __future__ import annotations


class TrainingCancelled(Exception):
    """The user asked to stop."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def describe_failure(exc: BaseException) -> str:
    """The one line a failed run shows (sidebar, CLI, study trial): a divergence says what to do in its own words,
    anything else is named by its type."""
    return str(exc) if isinstance(exc, TrainingDiverged) else f"{type(exc).__name__}: {exc}"
