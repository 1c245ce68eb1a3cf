"""Predict straight from photos: faces found once, every model run on all faces in one batch."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .choices import DEFAULT_DETECTOR
from .classifier import FerClassifier
from .faces import NO_FACE, Box, Face, FaceDetector, PhotoError, decode_photo, find_faces


@dataclass
class ModelPrediction:
    label: str
    probabilities: dict[str, float]
    latency_ms: float  # this model's share: its forward pass over all faces of the photo


@dataclass(frozen=True)
class Ensemble:
    """A face's ensemble verdict: the mean probabilities over its members."""

    probabilities: dict[str, float]
    members: list[str]  # checkpoint ids

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)


@dataclass
class FacePrediction:
    face: Face
    predictions: dict[str, ModelPrediction]  # checkpoint id -> prediction

    def ensemble(self, members: Collection[str] | None = None) -> Ensemble | None:
        """Mean probabilities and member ids of the largest group of models (of `members`, default all) sharing
        one class list.

        Probabilities over different class lists (FER2013's 7, FER+'s 8) cannot be averaged, so a FER+
        model beside FER2013 models is left out rather than disabling the ensemble. None below 2 members.
        """
        groups: dict[tuple[str, ...], list[str]] = {}
        for cid, p in self.predictions.items():
            if members is None or cid in members:
                groups.setdefault(tuple(p.probabilities), []).append(cid)
        if not groups:
            return None
        classes, members = max(groups.items(), key=lambda item: len(item[1]))
        if len(members) < 2:
            return None
        mean = np.mean([[self.predictions[m].probabilities[c] for c in classes] for m in members], axis=0)
        return Ensemble({c: float(v) for c, v in zip(classes, mean, strict=True)}, members)

    def votes(self) -> dict[str, list[str]]:
        """Top class -> ids of the models that predict it, most votes first: more than one key is a disagreement."""
        votes: dict[str, list[str]] = {}
        for cid, p in self.predictions.items():
            votes.setdefault(p.label, []).append(cid)
        return dict(sorted(votes.items(), key=lambda item: -len(item[1])))


@dataclass
class PhotoPrediction:
    source: str
    error: str | None = None
    image: np.ndarray | None = None  # RGB, upright, as decoded (a large JPEG at reduced size: faces.Photo)
    faces: list[FacePrediction] = field(default_factory=list)
    detect_ms: float = 0.0
    scale: float = 1.0  # pixels of the file per pixel of `image`: the exports give boxes in the file's pixels

    def box_in_file(self, face: Face) -> Box:
        x, y, w, h = face.box
        return (round(x * self.scale), round(y * self.scale), round(w * self.scale), round(h * self.scale))

    @property
    def no_face_found(self) -> bool:
        """Detection ran and found nothing: the models saw the image's centred square, which may be no face."""
        return any(fp.face.note == NO_FACE for fp in self.faces)

    def to_csv(self, members: Collection[str] | None = None) -> str:
        """One row per face and model, then the face's ensemble verdict (the mean over `members`, default every
        model of the largest class list, as the page headlines it): the box in the file's pixels, whether it was
        detected, the label and every class probability."""
        classes = list(dict.fromkeys(c for fp in self.faces for p in fp.predictions.values() for c in p.probabilities))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["path", "face", "x", "y", "w", "h", "detected", "model", "label", *classes, "ensemble members"])
        for n, fp in enumerate(self.faces, 1):
            for model, label, probabilities, listed in verdict_rows(fp.predictions, fp.ensemble(members)):
                cells = [f"{probabilities[c]:.5f}" if c in probabilities else "" for c in classes]
                row = [self.source, n, *self.box_in_file(fp.face), fp.face.detected, model, label, *cells, " ".join(listed)]
                writer.writerow(row)
        return out.getvalue()

    def to_json(self, members: Collection[str] | None = None) -> dict:
        """The documented `predict --json` contract; each face's `ensemble` as to_csv has it (null below 2 models)."""
        return {
            "path": self.source,
            "error": self.error,
            "faces": [
                {
                    "box": list(self.box_in_file(fp.face)),
                    "detected": fp.face.detected,
                    "note": fp.face.note,
                    **verdicts_json(fp.predictions, fp.ensemble(members)),
                }
                for fp in self.faces
            ],
        }


ENSEMBLE_ROW = "ensemble"  # the model column of an ensemble's rows in the photo and video CSVs


def verdict_rows(
    predictions: dict[str, ModelPrediction], ensemble: Ensemble | None
) -> list[tuple[str, str, dict[str, float], tuple[str, ...]]]:
    """(model, label, probabilities, members) for each model, then the ensemble's: a face's rows in the photo and
    the video CSVs."""
    rows: list[tuple[str, str, dict[str, float], tuple[str, ...]]] = [
        (cid, p.label, p.probabilities, ()) for cid, p in predictions.items()
    ]
    if ensemble is not None:
        rows.append((ENSEMBLE_ROW, ensemble.label, ensemble.probabilities, tuple(ensemble.members)))
    return rows


def verdicts_json(predictions: dict[str, ModelPrediction], ensemble: Ensemble | None) -> dict:
    """A face's `predictions` (per model) and `ensemble` (null below two models), as the photo and video JSON have them."""
    return {
        "predictions": {cid: {"label": p.label, "probabilities": p.probabilities} for cid, p in predictions.items()},
        "ensemble": None
        if ensemble is None
        else {"members": list(ensemble.members), "label": ensemble.label, "probabilities": ensemble.probabilities},
    }


def predict_faces(classifiers: list[FerClassifier], faces: list[Face]) -> list[FacePrediction]:
    stack = np.stack([f.face for f in faces]) if faces else np.zeros((0, 48, 48), np.uint8)
    per_face: list[dict[str, ModelPrediction]] = [{} for _ in faces]
    for clf in classifiers:
        t = time.perf_counter()
        probs = clf.predict_proba(stack)
        ms = (time.perf_counter() - t) * 1000
        for i, row in enumerate(probs):
            per_face[i][clf.id] = ModelPrediction(
                label=clf.classes[int(row.argmax())],
                probabilities={c: float(p) for c, p in zip(clf.classes, row, strict=True)},
                latency_ms=ms,
            )
    return [FacePrediction(f, p) for f, p in zip(faces, per_face, strict=True)]


def predict_photo(
    classifiers: list[FerClassifier],
    source: bytes | str | Path | np.ndarray,
    detector: str | FaceDetector = DEFAULT_DETECTOR,
    name: str | None = None,
) -> PhotoPrediction:
    """Faces and per-model probabilities for one photo; a bad file yields `error`, never an exception."""
    label = name or (str(source) if isinstance(source, (str, Path)) else "<image>")
    try:
        photo = decode_photo(source)
    except PhotoError as exc:
        return PhotoPrediction(label, error=str(exc))
    except OSError as exc:
        return PhotoPrediction(label, error=f"cannot read the file ({exc.strerror or exc})")
    t = time.perf_counter()
    faces = find_faces(photo.rgb, detector)
    detect_ms = (time.perf_counter() - t) * 1000
    return PhotoPrediction(
        label, image=photo.rgb, faces=predict_faces(classifiers, faces), detect_ms=detect_ms, scale=photo.scale
    )
