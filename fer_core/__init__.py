"""fer_core: datasets, model zoo, training, checkpoints, evaluation and explanation for facial expression recognition.

The stable surface for notebooks, the CLI and the app:

    from fer_core import load_checkpoint, list_checkpoints, list_models, predict_photo
    clf = load_checkpoint("keras_cnn-fer2013-...")
    clf.predict_proba(faces)          # uint8 (N, 48, 48) -> (N, len(clf.classes))
    predict_photo([clf], "photo.jpg") # faces found + per-face probabilities
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy_exports import lazy_exports

__version__ = "0.1.0"

# Imported on first use (PEP 562): `import fer_core.store` for listing checkpoints must not pay for torch.
_EXPORTS = {
    "FerClassifier": "classifier",
    "load_checkpoint": "classifier",
    "load_dataset": "data",
    "list_models": "models",
    "predict_photo": "predict",
    "list_checkpoints": "store",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["FerClassifier", "list_checkpoints", "list_models", "load_checkpoint", "load_dataset", "predict_photo", "__version__"]

if TYPE_CHECKING:
    from .classifier import FerClassifier, load_checkpoint
    from .data import load_dataset
    from .models import list_models
    from .predict import predict_photo
    from .store import list_checkpoints
