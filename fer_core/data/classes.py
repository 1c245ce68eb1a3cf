"""Canonical emotion names and the spellings other datasets use for them."""

from __future__ import annotations

# FER2013's own order: the `emotion` codes 0..6 of fer2013.csv index this tuple.
FER2013_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# FER+ adds contempt; kept last so the first seven codes mean the same as in FER2013.
FERPLUS_CLASSES: tuple[str, ...] = FER2013_CLASSES + ("contempt",)

_ALIASES: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "disgusting": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "contempt": "contempt",
}


def normalize_class_name(name: str) -> str | None:
    """Map a folder or column name such as 'Disgusted' or '3_sadness' to a canonical class, or None."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in _ALIASES:
        return _ALIASES[key]
    # CK+-style folders carry an index prefix or suffix ("1_anger", "anger_01").
    for part in key.split("_"):
        if part in _ALIASES:
            return _ALIASES[part]
    return None


def canonical_order(names: set[str] | list[str]) -> tuple[str, ...]:
    """Sort canonical class names in FER+ order so class indices agree across datasets."""
    return tuple(c for c in FERPLUS_CLASSES if c in set(names))
