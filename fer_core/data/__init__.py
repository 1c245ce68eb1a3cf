"""Datasets: files on disk -> FerData (uint8 faces, labels, official or seeded splits, fingerprint).

Names load on first use: the choices (label sources, augmentation presets, the default dataset) are torch-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "AUGMENT_PRESETS": "choices",
    "DataError": "choices",
    "LABEL_SOURCES": "choices",
    "dataset_path": "choices",
    "find_default_dataset": "choices",
    "FER2013_CLASSES": "classes",
    "FERPLUS_CLASSES": "classes",
    "normalize_class_name": "classes",
    "augment_batch": "augment",
    "build_augmentation": "augment",
    "IMAGE_SIZE": "dataset",
    "SPLITS": "dataset",
    "FerData": "dataset",
    "load_dataset": "loading",
    "to_model_input": "preprocess",
    "DatasetSummary": "summary",
    "summarize": "summary",
    "DatasetOverview": "overview",
    "dataset_overview": "overview",
}
__all__ = [
    "AUGMENT_PRESETS",
    "DataError",
    "DatasetOverview",
    "DatasetSummary",
    "FER2013_CLASSES",
    "FERPLUS_CLASSES",
    "FerData",
    "IMAGE_SIZE",
    "LABEL_SOURCES",
    "SPLITS",
    "augment_batch",
    "build_augmentation",
    "dataset_overview",
    "dataset_path",
    "find_default_dataset",
    "load_dataset",
    "normalize_class_name",
    "summarize",
    "to_model_input",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .augment import augment_batch, build_augmentation
    from .choices import AUGMENT_PRESETS, LABEL_SOURCES, DataError, dataset_path, find_default_dataset
    from .classes import FER2013_CLASSES, FERPLUS_CLASSES, normalize_class_name
    from .dataset import IMAGE_SIZE, SPLITS, FerData
    from .loading import load_dataset
    from .overview import DatasetOverview, dataset_overview
    from .preprocess import to_model_input
    from .summary import DatasetSummary, summarize
