"""The datasets the pages read: FER2013 where the app finds it (FER_DATA), loaded once per process and label
source, and its cached overview."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from fer_core.records import CheckpointMeta

if TYPE_CHECKING:
    from fer_core.data import DatasetOverview, FerData


def default_dataset_path() -> str:
    from fer_core.data import find_default_dataset

    found = find_default_dataset()
    return str(found) if found else ""


@st.cache_resource(show_spinner="Loading dataset (the first time decodes every image)…", max_entries=4)
def dataset(path: str, labels: str = "fer2013") -> FerData:
    from fer_core.data import load_dataset

    return load_dataset(path, labels=labels)


@st.cache_data(show_spinner="Summarising dataset (the first time loads every image)…", max_entries=4)
def dataset_overview(path: str, labels: str = "fer2013") -> DatasetOverview:
    from fer_core.data.overview import dataset_overview

    return dataset_overview(path, labels)


def found_dataset(meta: CheckpointMeta) -> FerData | None:
    """The dataset a checkpoint was trained on where the app finds it (FER_DATA), else None: cached per path and
    label source, with the checkpoint's classes. Its test split is what the pages read (store.dataset_for applies a
    checkpoint's own split options too)."""
    path = default_dataset_path()
    if not path:
        return None
    data = dataset(path, meta.data.label_source)
    if tuple(data.classes) != meta.classes:
        data = data.with_classes(meta.classes)
    return data
