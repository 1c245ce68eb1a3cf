"""How much of a model's test error is the dataset's: its predictions against the FER+ crowd's relabelling
(Barsoum et al. 2016, ten votes per FER2013 face), and cleanlab's confident learning where no relabelling exists.

Every test face falls in exactly one bucket. A face the model gets right (by its FER2013 label) is `correct`,
whatever the crowd says; a wrong face is judged by the FER+ majority (Microsoft's rule, `FerPlusVotes.majority`):
the crowd agrees with the model, with the FER2013 label, or with neither, or it has no usable majority. Accuracy
against the crowd counts only faces whose majority is one of the model's classes (a contempt majority is left
out of a seven-class model's figure, and the count is said). Everything is computed from stored predictions:
no model runs here, and this is the only module that imports cleanlab.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.choices import DataError, dataset_path
from ..data.ferplus import VOTES_FILE, find_ferplus_dir, read_votes, rows_for_names
from ..evaluation import accuracy_interval
from ..records import Interval, Predictions

BUCKETS = ("correct", "crowd_agrees_with_model", "crowd_agrees_with_label", "crowd_agrees_with_neither", "no_crowd_majority")
BUCKET_LABELS = {
    "correct": "correct",
    "crowd_agrees_with_model": "wrong, the crowd agrees with the model",
    "crowd_agrees_with_label": "wrong, the crowd agrees with the label",
    "crowd_agrees_with_neither": "wrong, the crowd agrees with neither",
    "no_crowd_majority": "wrong, no crowd majority",
}
BUCKET_SHORT = {  # column headings and chart legends, where the long label does not fit
    "correct": "correct",
    "crowd_agrees_with_model": "crowd = model",
    "crowd_agrees_with_label": "crowd = label",
    "crowd_agrees_with_neither": "crowd = other",
    "no_crowd_majority": "no majority",
}
NO_MAJORITY, OTHER_CLASS = -1, -2  # crowd codes beside a class index


@dataclass(frozen=True)
class CrowdVotes:
    """The FER+ votes of a set of faces, in their order: raw counts and the majority as a class name."""

    names: tuple[str, ...]
    votes: np.ndarray  # float32 (N, 10) in ferplus.VOTE_LABELS order; zeros where a face has no row
    majority: tuple[str, ...]  # "" where there is no usable majority (or no row)

    def codes(self, classes: tuple[str, ...]) -> np.ndarray:
        """The majority as an index into `classes`; NO_MAJORITY, or OTHER_CLASS for a majority the classes lack."""
        return np.array([classes.index(m) if m in classes else (OTHER_CLASS if m else NO_MAJORITY) for m in self.majority])


def crowd_votes(names: tuple[str, ...], ferplus_dir: Path) -> CrowdVotes:
    """FER+ votes for faces named as in FerData (Kaggle paths or `row:N`), joined by fer2013.csv row."""
    votes = read_votes(ferplus_dir / VOTES_FILE)
    rows = rows_for_names(names, ferplus_dir)
    if len(rows) and rows.max() >= len(votes.votes):
        raise DataError(f"{ferplus_dir / VOTES_FILE}: has {len(votes.votes)} rows, fewer than the faces need")
    known = rows >= 0
    counts = np.where(known[:, None], votes.votes[np.maximum(rows, 0)], 0.0).astype(np.float32)
    majority = votes.majority_names()
    return CrowdVotes(tuple(names), counts, tuple(majority[r] if r >= 0 else "" for r in rows.tolist()))


def find_crowd_votes(data_path: str | Path | None, names: tuple[str, ...]) -> CrowdVotes:
    """The FER+ votes beside the data (the same lookup as `--labels ferplus`); a DataError that says where to put
    them when they are not there."""
    found = find_ferplus_dir(dataset_path(data_path)) if data_path else None
    if found is None:
        where = f"next to {data_path} or in a sibling ferplus/ folder" if data_path else "next to FER2013 (set FER_DATA)"
        raise DataError(f"FER+ votes not found: put Microsoft's {VOTES_FILE} (and kaggle_to_fer2013_row.csv) {where}")
    return crowd_votes(names, found)


@dataclass(frozen=True)
class Estimate:
    value: float
    ci: Interval
    faces: int  # how many faces the figure is over

    @classmethod
    def of(cls, correct: np.ndarray) -> Estimate:
        return cls(float(correct.mean()) if len(correct) else float("nan"), accuracy_interval(correct), int(len(correct)))


@dataclass(frozen=True)
class ClassNoise:
    """One FER2013 class's faces: bucket counts and the two accuracies."""

    name: str
    counts: dict[str, int]
    crowd_accuracy: Estimate
    agreed_accuracy: Estimate

    @property
    def faces(self) -> int:
        return sum(self.counts.values())

    @property
    def errors(self) -> int:
        return self.faces - self.counts["correct"]

    @property
    def crowd_sides_with_model(self) -> float:
        """Share of the class's errors where the crowd's majority is what the model said."""
        return self.counts["crowd_agrees_with_model"] / self.errors if self.errors else float("nan")


@dataclass(frozen=True)
class LabelNoise:
    """A model's (or an ensemble's) test faces in the buckets, with the crowd's votes for each face."""

    checkpoint: str
    predictions: Predictions
    crowd: CrowdVotes
    buckets: np.ndarray  # int (N,), index into BUCKETS

    def counts(self, mask: np.ndarray | None = None) -> dict[str, int]:
        chosen = self.buckets if mask is None else self.buckets[mask]
        return {b: int((chosen == i).sum()) for i, b in enumerate(BUCKETS)}

    @property
    def errors(self) -> int:
        return int((self.buckets != 0).sum())

    @property
    def faces(self) -> int:
        return len(self.buckets)

    @property
    def crowd_sides_with_model(self) -> float:
        """Share of the errors where the crowd's majority is what the model said: errors that are the label's."""
        return float((self.buckets == 1).sum() / self.errors) if self.errors else float("nan")

    def _codes(self) -> np.ndarray:
        return self.crowd.codes(self.predictions.classes)

    def crowd_accuracy(self, mask: np.ndarray | None = None) -> Estimate:
        """Accuracy against the FER+ majority, over the faces whose majority is one of the model's classes."""
        codes = self._codes()
        keep = (codes >= 0) & (True if mask is None else mask)
        return Estimate.of((self.predictions.predicted[keep] == codes[keep]).astype(float))

    def agreed_accuracy(self, mask: np.ndarray | None = None) -> Estimate:
        """Accuracy on the faces whose FER2013 label is also the crowd's majority: labels two sources agree on."""
        keep = (self._codes() == self.predictions.labels) & (True if mask is None else mask)
        return Estimate.of((self.predictions.predicted[keep] == self.predictions.labels[keep]).astype(float))

    @property
    def outside_classes(self) -> int:
        """Faces whose crowd majority is a class the model lacks (contempt for FER2013's seven)."""
        return int((self._codes() == OTHER_CLASS).sum())

    def per_class(self) -> list[ClassNoise]:
        out = []
        for i, name in enumerate(self.predictions.classes):
            mask = self.predictions.labels == i
            out.append(ClassNoise(name, self.counts(mask), self.crowd_accuracy(mask), self.agreed_accuracy(mask)))
        return out

    def faces_in(self, bucket: str, true_class: str | None = None) -> np.ndarray:
        """Positions (into the predictions) of a bucket's faces, of one FER2013 class when given."""
        mask = self.buckets == BUCKETS.index(bucket)
        if true_class is not None:
            mask &= self.predictions.labels == self.predictions.classes.index(true_class)
        return np.flatnonzero(mask)

    def to_json(self) -> dict:
        crowd, agreed = self.crowd_accuracy(), self.agreed_accuracy()
        return {
            "checkpoint": self.checkpoint,
            "faces": self.faces,
            "errors": self.errors,
            **self.counts(),
            "crowd_sides_with_model": self.crowd_sides_with_model,
            "crowd_accuracy": _estimate_json(crowd),
            "agreed_accuracy": _estimate_json(agreed),
            "majority_outside_classes": self.outside_classes,
            "per_class": {
                c.name: {
                    **c.counts,
                    "crowd_accuracy": _estimate_json(c.crowd_accuracy),
                    "agreed_accuracy": _estimate_json(c.agreed_accuracy),
                }
                for c in self.per_class()
            },
        }


def _estimate_json(e: Estimate) -> dict:
    return {"value": e.value, "low": e.ci.low, "high": e.ci.high, "faces": e.faces}


def label_noise(checkpoint: str, predictions: Predictions, crowd: CrowdVotes) -> LabelNoise:
    """Each face's bucket; `crowd` must hold the votes of exactly these faces, in this order."""
    if crowd.names != predictions.names:
        raise DataError(f"{checkpoint}: the crowd's votes are for other faces than its predictions")
    codes = crowd.codes(predictions.classes)
    predicted, labels = predictions.predicted, predictions.labels
    buckets = np.select(
        [predicted == labels, codes == predicted, codes == labels, codes != NO_MAJORITY],
        [0, 1, 2, 3],
        default=4,
    )
    return LabelNoise(checkpoint, predictions, crowd, buckets)


@dataclass(frozen=True)
class LabelIssues:
    """cleanlab's flags on a set of faces: the positions whose given label is likely wrong, worst first."""

    checkpoint: str
    flagged: np.ndarray  # positions into the predictions, ranked by cleanlab's self-confidence
    faces: int


def label_issues(checkpoint: str, predictions: Predictions) -> LabelIssues:
    """Confident learning (Northcutt et al. 2021, cleanlab's `find_label_issues`) on out-of-sample probabilities,
    which test predictions are: a model never trained on these faces."""
    from cleanlab.filter import find_label_issues

    present = np.unique(predictions.labels)
    if len(present) < 2:
        return LabelIssues(checkpoint, np.array([], dtype=np.int64), len(predictions.labels))
    flagged = find_label_issues(predictions.labels, predictions.probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    return LabelIssues(checkpoint, np.asarray(flagged, dtype=np.int64), len(predictions.labels))


@dataclass(frozen=True)
class FlagAgreement:
    """How cleanlab's flags match the crowd on faces with a usable majority: precision = flagged faces the crowd
    disagrees with the label on / flagged; recall = those / every face the crowd disagrees on."""

    precision: float
    recall: float
    flagged: int
    crowd_disagrees: int
    faces: int


def flag_agreement(issues: LabelIssues, crowd: CrowdVotes, predictions: Predictions) -> FlagAgreement:
    codes = crowd.codes(predictions.classes)
    judged = codes != NO_MAJORITY
    disagrees = judged & (codes != predictions.labels)
    flagged = np.zeros(len(codes), bool)
    flagged[issues.flagged] = True
    hits = int((flagged & disagrees).sum())
    n_flagged = int((flagged & judged).sum())
    return FlagAgreement(
        precision=hits / n_flagged if n_flagged else float("nan"),
        recall=hits / int(disagrees.sum()) if disagrees.any() else float("nan"),
        flagged=n_flagged,
        crowd_disagrees=int(disagrees.sum()),
        faces=int(judged.sum()),
    )
