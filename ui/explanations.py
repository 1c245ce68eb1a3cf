"""A checkpoint's test faces looked into, cached per checkpoint: the faces it gets wrong, attributions of one
face, its feature maps, and the t-SNE of its penultimate features."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from .cache import checkpoint_signature, refreshed_by
from .checkpoints import classifier, metas, predictions
from .datasets import found_dataset

if TYPE_CHECKING:
    import numpy as np

    from fer_core.evaluation import Mistake
    from fer_core.explain import Attribution, FaceEmbedding


@refreshed_by(checkpoint_signature, st.cache_data(show_spinner=False, max_entries=64))
def mistakes(
    signature: tuple, checkpoint_id: str, true_class: str | None, predicted_class: str | None, limit: int
) -> tuple[int, list[Mistake]] | None:
    """How many test faces the model gets wrong, and the first `limit` with pixels; None without the dataset."""
    from fer_core.evaluation import misclassified_faces

    data = found_dataset(metas()[checkpoint_id])
    if data is None:
        return None
    return misclassified_faces(predictions.at(signature, checkpoint_id), data, true_class, predicted_class, limit)


@refreshed_by(checkpoint_signature, st.cache_data(show_spinner=False, max_entries=256))
def attribution(signature: tuple, checkpoint_id: str, method: str, face: np.ndarray, target: str | None) -> Attribution:
    """Grad-CAM or Integrated Gradients of one face: a rerun of Explain recomputes nothing."""
    from fer_core.explain import METHODS

    return METHODS[method](classifier.at(signature, checkpoint_id), face, target)


@refreshed_by(checkpoint_signature, st.cache_data(show_spinner=False, max_entries=64))
def feature_layers(signature: tuple, checkpoint_id: str) -> list[str]:
    from fer_core.explain import feature_layers as layers_of

    return layers_of(classifier.at(signature, checkpoint_id))


@refreshed_by(checkpoint_signature, st.cache_data(show_spinner=False, max_entries=256))
def feature_grid(
    signature: tuple, checkpoint_id: str, face: np.ndarray, layer: str, max_maps: int = 32
) -> tuple[np.ndarray, tuple]:
    """A grid image of a layer's most active feature maps, and the maps' shape (channels, h, w)."""
    from fer_core.explain import feature_grid as grid_of
    from fer_core.explain import feature_maps

    maps = feature_maps(classifier.at(signature, checkpoint_id), face, layer, max_maps)
    return grid_of(maps), maps.shape


@refreshed_by(checkpoint_signature, st.cache_data(show_spinner="Computing penultimate-layer features and t-SNE…", max_entries=16))
def embedding(signature: tuple, checkpoint_id: str, n: int) -> FaceEmbedding:
    from fer_core.explain import embed_test_faces

    clf = classifier.at(signature, checkpoint_id)
    data = found_dataset(clf.meta)
    if data is None:
        raise ValueError("the test faces are needed for the embedding: FER2013 was not found (set FER_DATA)")
    return embed_test_faces(clf, data, n)
