"""Datasets: files on disk -> FerData (uint8 faces, labels, official or seeded splits, fingerprint)."""

from .augment import AUGMENT_PRESETS, augment_batch, build_augmentation
from .classes import FER2013_CLASSES, FERPLUS_CLASSES, normalize_class_name
from .dataset import IMAGE_SIZE, SPLITS, DataError, FerData
from .loading import LABEL_SOURCES, find_default_dataset, load_dataset
from .preprocess import to_model_input
from .summary import DatasetSummary, summarize

__all__ = [
    "AUGMENT_PRESETS",
    "DataError",
    "DatasetSummary",
    "FER2013_CLASSES",
    "FERPLUS_CLASSES",
    "FerData",
    "IMAGE_SIZE",
    "LABEL_SOURCES",
    "SPLITS",
    "augment_batch",
    "build_augmentation",
    "find_default_dataset",
    "load_dataset",
    "normalize_class_name",
    "summarize",
    "to_model_input",
]
