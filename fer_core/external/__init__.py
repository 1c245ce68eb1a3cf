"""Evaluation on a user's own labelled data (CK+, JAFFE, a lab's recordings): read and crop it (dataset.py),
run checkpoints on the classes they share with it and cache the results (results.py); records.py holds the
torch-free records and cache file. Names load on first use: listing cached datasets never imports torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "IGNORE": "dataset",
    "default_mapping": "dataset",
    "list_labelled": "dataset",
    "load_external": "dataset",
    "parse_mapping": "dataset",
    "ExternalData": "records",
    "ExternalSummary": "records",
    "EvaluatedCheckpoints": "results",
    "ExternalResult": "results",
    "cached_data": "results",
    "cached_datasets": "results",
    "cached_results": "results",
    "evaluate_checkpoints": "results",
    "evaluate_external": "results",
    "external_root": "results",
}
__all__ = [
    "EvaluatedCheckpoints",
    "ExternalData",
    "ExternalResult",
    "ExternalSummary",
    "IGNORE",
    "cached_data",
    "cached_datasets",
    "cached_results",
    "default_mapping",
    "evaluate_checkpoints",
    "evaluate_external",
    "external_root",
    "list_labelled",
    "load_external",
    "parse_mapping",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .dataset import IGNORE, default_mapping, list_labelled, load_external, parse_mapping
    from .records import ExternalData, ExternalSummary
    from .results import (
        EvaluatedCheckpoints,
        ExternalResult,
        cached_data,
        cached_datasets,
        cached_results,
        evaluate_checkpoints,
        evaluate_external,
        external_root,
    )
