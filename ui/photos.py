"""Predict's models and their answers: a photo's faces predicted and drawn (cached per file, models and
detector), the live stream's recognizer, and the probability grid of one face."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import streamlit as st

from .cache import refreshed_by, store_signature
from .checkpoints import classifier, predict_backends

if TYPE_CHECKING:
    from fer_core.classifier import FerClassifier
    from fer_core.predict import PhotoPrediction
    from fer_core.video import LiveRecognizer


@dataclass(frozen=True)
class ShownPhoto:
    """A photo as Predict shows it: its prediction without the decoded image (a phone photo's is ~9 MB, which the
    cache would copy on every rerun), and the photo drawn at display size with its numbered face boxes."""

    prediction: PhotoPrediction
    drawn_jpeg: bytes | None  # None when the photo could not be read (prediction.error says why)


@refreshed_by(store_signature, st.cache_data(show_spinner="Finding faces and predicting…", max_entries=32))
def _shown_photo(signature: tuple, data: bytes, models: tuple[tuple[str, str], ...], detector: str, name: str) -> ShownPhoto:
    import cv2

    from fer_core.predict import predict_photo

    from .charts import draw_faces

    result = predict_photo([classifier(cid, backend) for cid, backend in models], data, detector=detector, name=name)
    if result.image is None:
        return ShownPhoto(result, None)
    drawn = draw_faces(result.image, [fp.face.box for fp in result.faces], [fp.face.detected for fp in result.faces])
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return ShownPhoto(replace(result, image=None), jpeg.tobytes() if ok else None)


def predict(data: bytes, checkpoint_ids: list[str], detector: str, name: str) -> ShownPhoto:
    """Every face of a photo through the chosen models, each on its faster backend; reruns of the page do not
    predict again for the same file, models and detector."""
    return _shown_photo(data, tuple(predict_backends(checkpoint_ids).items()), detector, name)


def predict_classifiers(checkpoint_ids: list[str]) -> list[FerClassifier]:
    """The chosen models, each on its faster backend (predict_backends)."""
    return [classifier(cid, backend) for cid, backend in predict_backends(checkpoint_ids).items()]


def live_recognizer(checkpoint_ids: list[str], detector: str) -> LiveRecognizer:
    """This browser session's recognizer for the live stream: its face numbers and timeline are its own, and it
    starts afresh when the models or the detector change."""
    from fer_core.video import LiveRecognizer

    key = (tuple(predict_backends(checkpoint_ids).items()), detector, store_signature())
    held = st.session_state.get("live_recognizer")
    if held is None or held[0] != key:
        held = (key, LiveRecognizer(predict_classifiers(checkpoint_ids), detector))
        st.session_state["live_recognizer"] = held
    return held[1]


@st.cache_data(show_spinner=False, max_entries=64)
def _probability_grid_layout(models: tuple[str, ...], classes: tuple[str, ...]) -> dict:
    from .charts import probability_grid

    return probability_grid(models, classes).to_dict()


def probability_grid_spec(per_model: dict[str, dict[str, float]]) -> dict:
    """A face's probability grid as a Vega-Lite spec: its layout built and validated once per models and classes
    (Altair, ~80 ms), the face's probabilities filled in as its named dataset."""
    from .charts import GRID_DATA, probability_cells

    classes = tuple(dict.fromkeys(e for probs in per_model.values() for e in probs))
    layout = _probability_grid_layout(tuple(per_model), classes)
    return layout | {"datasets": {GRID_DATA: probability_cells(per_model)}}
