"""The model zoo. Importing this package fills the registry from the catalog (without importing torch)."""

from .catalog import NOT_REGISTERED
from .registry import (
    ACTIVATIONS,
    NORMS,
    TIMM_PREFIX,
    ModelSpec,
    PretrainedUnavailable,
    build_model,
    count_parameters,
    get_spec,
    list_models,
    register,
    spec_parameters,
    timm_name,
)

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "NOT_REGISTERED",
    "TIMM_PREFIX",
    "ModelSpec",
    "PretrainedUnavailable",
    "build_model",
    "count_parameters",
    "get_spec",
    "list_models",
    "register",
    "spec_parameters",
    "timm_name",
]
