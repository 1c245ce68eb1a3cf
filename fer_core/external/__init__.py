"""Evaluation on a user's own labelled data (CK+, JAFFE, a lab's recordings): read and crop it (dataset.py),
run checkpoints and ensembles on the classes they share with it and cache the results (results.py)."""

from .dataset import IGNORE, ExternalData, default_mapping, list_labelled, load_external, parse_mapping
from .results import (
    ExternalResult,
    cached_data,
    cached_datasets,
    cached_results,
    evaluate_external,
    external_root,
)

__all__ = [
    "IGNORE",
    "ExternalData",
    "ExternalResult",
    "cached_data",
    "cached_datasets",
    "cached_results",
    "default_mapping",
    "evaluate_external",
    "external_root",
    "list_labelled",
    "load_external",
    "parse_mapping",
]
