"""The model zoo. Importing this package registers every model."""

from . import custom, torchvision_zoo  # noqa: F401  (registration side effect)
from .registry import ModelSpec, build_model, count_parameters, get_spec, list_models, register, spec_parameters
from .torchvision_zoo import PretrainedUnavailable

__all__ = ["ModelSpec", "PretrainedUnavailable", "build_model", "count_parameters", "get_spec", "list_models", "register", "spec_parameters"]
