"""The model zoo. Importing this package fills the registry from the catalog (without importing torch)."""

from . import catalog  # noqa: F401  (registration side effect)
from .registry import (
    ACTIVATIONS,
    NORMS,
    ModelSpec,
    PretrainedUnavailable,
    build_model,
    count_parameters,
    get_spec,
    list_models,
    register,
    spec_parameters,
)

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "ModelSpec",
    "PretrainedUnavailable",
    "build_model",
    "count_parameters",
    "get_spec",
    "list_models",
    "register",
    "spec_parameters",
]
