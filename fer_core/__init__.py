"""fer_core: datasets, model zoo, training, checkpoints, evaluation and explanation for facial expression recognition.

The stable surface for notebooks, the CLI and the app:

    from fer_core import load_checkpoint, list_checkpoints, list_models, predict_photo
    clf = load_checkpoint("keras_cnn-fer2013-...")
    clf.predict_proba(faces)          # uint8 (N, 48, 48) -> (N, len(clf.classes))
    predict_photo([clf], "photo.jpg") # faces found + per-face probabilities
"""

__version__ = "0.1.0"

from .classifier import FerClassifier, load_checkpoint  # noqa: E402
from .data import load_dataset  # noqa: E402
from .models import list_models  # noqa: E402
from .predict import predict_photo  # noqa: E402
from .store import list_checkpoints  # noqa: E402

__all__ = ["FerClassifier", "list_checkpoints", "list_models", "load_checkpoint", "load_dataset", "predict_photo", "__version__"]
