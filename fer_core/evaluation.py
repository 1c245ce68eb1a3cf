"""Metrics from predictions (scikit-learn), model comparison, ensembles and mistakes: numpy in, no torch (the
Overview's ensemble row is computed before torch is loaded)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import binomtest, bootstrap
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    roc_auc_score,
    roc_curve,
    top_k_accuracy_score,
)
from sklearn.preprocessing import label_binarize

from .records import Interval, Predictions, TestMetrics

if TYPE_CHECKING:
    from .data import FerData


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE (Guo et al. 2017): |accuracy - confidence| averaged over equal-width confidence bins."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


@dataclass(frozen=True)
class ReliabilityBin:
    confidence: float  # mean top-class probability in the bin
    accuracy: float
    count: int


@dataclass(frozen=True)
class RocCurve:
    fpr: list[float]
    tpr: list[float]
    auc: float


def reliability_curve(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[ReliabilityBin]:
    """Per-bin confidence, accuracy and count, for a calibration plot."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    return [
        ReliabilityBin(float(conf[which == b].mean()), float(correct[which == b].mean()), int((which == b).sum()))
        for b in range(bins)
        if (which == b).any()
    ]


@dataclass(frozen=True)
class Metrics(TestMetrics):
    """Everything the Evaluate views show about one set of predictions: the headline figures stored in
    meta.json, and the curves and tables drawn from them."""

    confusion_matrix: list[list[int]]
    confusion_matrix_normalized: list[list[float]]
    classification_report: dict[str, Any]  # scikit-learn's, per class and averaged
    roc: dict[str, RocCurve]  # one-vs-rest, per class present in the labels
    reliability: list[ReliabilityBin]

    def headline(self) -> TestMetrics:
        """The few numbers stored in meta.json and shown in leaderboards."""
        return TestMetrics(**{f.name: getattr(self, f.name) for f in fields(TestMetrics)})


def compute_metrics(predictions: Predictions) -> Metrics:
    """Every metric from probabilities (N,C) and true labels (N,) (scikit-learn's implementations)."""
    classes = predictions.classes
    probs = np.asarray(predictions.probs, dtype=np.float64)
    labels = np.asarray(predictions.labels, dtype=np.int64)
    if not np.isfinite(probs).all():  # scikit-learn's own error ("Input contains NaN") would not say why
        broken = int((~np.isfinite(probs)).any(axis=1).sum())
        raise ValueError(
            f"{broken} of {len(probs)} faces have NaN or infinite probabilities: the model's weights are not finite "
            "(a diverged run); retrain it with a lower learning rate"
        )
    k = len(classes)
    ids = list(range(k))
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(labels, pred, labels=ids)
    row_sums = cm.sum(axis=1, keepdims=True)
    per_class = np.divide(np.diag(cm), row_sums[:, 0], out=np.zeros(k), where=row_sums[:, 0] > 0)
    onehot = label_binarize(labels, classes=ids) if k > 2 else np.eye(k)[labels]
    present = onehot.sum(axis=0) > 0
    roc = {}
    for c in np.flatnonzero(present & (onehot.sum(axis=0) < len(labels))):
        fpr, tpr, _ = roc_curve(onehot[:, c], probs[:, c])
        roc[classes[c]] = RocCurve(fpr.tolist(), tpr.tolist(), float(roc_auc_score(onehot[:, c], probs[:, c])))
    clipped = np.clip(probs, 1e-7, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    return Metrics(
        n=int(len(labels)),
        accuracy=float(accuracy_score(labels, pred)),
        loss=float(log_loss(labels, clipped, labels=ids)),
        macro_f1=float(f1_score(labels, pred, average="macro", labels=ids, zero_division=0)),
        weighted_f1=float(f1_score(labels, pred, average="weighted", labels=ids, zero_division=0)),
        top2_accuracy=float(top_k_accuracy_score(labels, probs, k=2, labels=ids)) if k > 2 else 1.0,
        ece=expected_calibration_error(probs, labels),
        micro_auc=float(roc_auc_score(onehot[:, present].ravel(), probs[:, present].ravel())) if present.any() else float("nan"),
        per_class_accuracy={c: float(a) for c, a in zip(classes, per_class, strict=True)},
        confusion_matrix=cm.tolist(),
        confusion_matrix_normalized=np.divide(cm, row_sums, out=np.zeros_like(cm, dtype=float), where=row_sums > 0).tolist(),
        classification_report=classification_report(
            labels, pred, labels=ids, target_names=list(classes), output_dict=True, zero_division=0
        ),
        roc=roc,
        reliability=reliability_curve(probs, labels),
    )


CONFIDENCE = 0.95
RESAMPLES = 2000


def accuracy_interval(correct: np.ndarray) -> Interval:
    """Bootstrap (percentile) 95% interval of the mean of per-face correctness (scipy.stats.bootstrap)."""
    if len(correct) < 2 or np.all(correct == correct[0]):
        value = float(np.mean(correct)) if len(correct) else float("nan")
        return Interval(value, value)
    result = bootstrap(
        (correct,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES, method="percentile", random_state=0
    )
    return Interval(float(result.confidence_interval.low), float(result.confidence_interval.high))


@dataclass(frozen=True)
class McNemarResult:
    only_a_correct: int
    only_b_correct: int
    p_value: float
    statistic: str = "exact binomial"

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05


def mcnemar(pred_a: np.ndarray, pred_b: np.ndarray, labels: np.ndarray) -> McNemarResult:
    """Exact McNemar test on the discordant pairs of two models' predictions over the same faces."""
    a_ok = np.asarray(pred_a) == np.asarray(labels)
    b_ok = np.asarray(pred_b) == np.asarray(labels)
    n01, n10 = int((a_ok & ~b_ok).sum()), int((~a_ok & b_ok).sum())
    p = 1.0 if n01 + n10 == 0 else float(binomtest(n01, n01 + n10, 0.5).pvalue)
    return McNemarResult(n01, n10, p)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error), in the input order; none of the chosen libraries has it
    (scipy's false_discovery_control is Benjamini-Hochberg, which bounds another error)."""
    order = np.argsort(p_values)
    adjusted = np.empty(len(p_values))
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()


SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Standing:
    """Where a model stands against the most accurate of the models shown beside it, once noise is counted: a lead
    of 0.03 points on 7,178 faces is no lead."""

    accuracy: float
    interval: Interval  # bootstrap 95% of the accuracy
    p_holm: float | None  # exact McNemar against the most accurate model on the faces both saw, Holm-adjusted over
    # every comparison shown; None for the most accurate model itself

    @property
    def best_within_noise(self) -> bool:
        """The most accurate model, or one the test cannot tell from it."""
        return self.p_holm is None or self.p_holm >= SIGNIFICANCE

    def verdict(self) -> str:
        if self.p_holm is None:
            return "most accurate"
        return f"{'within noise of' if self.best_within_noise else 'behind'} the best (p {self.p_holm:.2g})"


def standings(predictions: dict[str, Predictions]) -> dict[str, Standing]:
    """Each model's accuracy interval and whether the most accurate model's lead over it is real (McNemar,
    Holm-corrected over the comparisons shown). Models tested on different faces (a dataset of the user's, where a
    model lacking a class leaves its faces out) are compared on the faces both saw."""
    if not predictions:
        return {}
    top = max(predictions, key=lambda cid: predictions[cid].accuracy)
    others = [cid for cid in predictions if cid != top]
    raw = [_mcnemar_on_shared_faces(predictions[top], predictions[cid]).p_value for cid in others]
    adjusted = dict(zip(others, holm(raw), strict=True))
    return {
        cid: Standing(p.accuracy, accuracy_interval((p.predicted == p.labels).astype(float)), adjusted.get(cid))
        for cid, p in predictions.items()
    }


def _mcnemar_on_shared_faces(a: Predictions, b: Predictions) -> McNemarResult:
    if a.names == b.names:
        return mcnemar(a.predicted, b.predicted, a.labels)
    index = {name: i for i, name in enumerate(b.names)}
    pairs = np.array([(i, index[name]) for i, name in enumerate(a.names) if name in index], dtype=np.int64).reshape(-1, 2)
    return mcnemar(a.predicted[pairs[:, 0]], b.predicted[pairs[:, 1]], a.labels[pairs[:, 0]])


def misclassified(
    probs: np.ndarray, labels: np.ndarray, true_class: int | None = None, predicted_class: int | None = None
) -> np.ndarray:
    """Indices of the wrongly predicted faces, most confident mistakes first: at the top are the faces a
    model is sure about and the label contradicts, where FER2013's label noise shows."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    pred = probs.argmax(1)
    wrong = pred != labels
    if true_class is not None:
        wrong &= labels == true_class
    if predicted_class is not None:
        wrong &= pred == predicted_class
    index = np.flatnonzero(wrong)
    return index[np.argsort(-probs[index, pred[index]], kind="stable")]


@dataclass(frozen=True)
class Mistake:
    face: np.ndarray  # (48, 48) uint8
    name: str  # the face's file name in the dataset
    true_class: str
    predicted_class: str
    confidence: float  # the model's probability for its (wrong) prediction


def misclassified_faces(
    predictions: Predictions, data: FerData, true_class: str | None = None, predicted_class: str | None = None, limit: int = 40
) -> tuple[int, list[Mistake]]:
    """How many stored predictions are wrong (optionally of one true / predicted class), and the first `limit` of
    them with their pixels, most confident first. Faces are matched to the dataset by name: stored predictions
    may come from a dataset with other faces or another order; faces it does not hold are skipped."""
    classes = predictions.classes
    wrong = misclassified(
        predictions.probs,
        predictions.labels,
        None if true_class is None else classes.index(true_class),
        None if predicted_class is None else classes.index(predicted_class),
    )
    position = {name: i for i, name in enumerate(data.names)}
    found = [i for i in wrong if predictions.names[i] in position][:limit]
    return len(wrong), [
        Mistake(
            face=data.images[position[predictions.names[i]], 0].numpy(),
            name=predictions.names[i],
            true_class=classes[predictions.labels[i]],
            predicted_class=classes[predictions.probs[i].argmax()],
            confidence=float(predictions.probs[i].max()),
        )
        for i in found
    ]


class EnsembleError(ValueError):
    """The members cannot be averaged: other classes, or other test faces."""


@dataclass(frozen=True)
class EnsembleResult:
    members: tuple[str, ...]
    predictions: Predictions  # the mean of the members' probabilities
    metrics: Metrics
    best_member: str  # the most accurate member on the same faces
    best_member_accuracy: float

    def accuracy_interval(self) -> Interval:
        return accuracy_interval((self.predictions.predicted == self.predictions.labels).astype(float))


def ensemble_probs(prob_list: list[np.ndarray]) -> np.ndarray:
    """Mean of the members' probabilities (same faces, same class order)."""
    shapes = {p.shape for p in prob_list}
    if len(shapes) != 1:
        raise EnsembleError(f"ensemble members disagree on the test set or classes: shapes {sorted(shapes)}")
    return np.mean(np.stack(prob_list), axis=0)


def evaluate_ensemble(members: dict[str, Predictions]) -> EnsembleResult:
    """The mean-probability ensemble of two or more models' predictions on the same faces, with its metrics.

    The one implementation behind the CLI's `evaluate --ensemble`, the Evaluate page and bench/accuracy.py.
    """
    if len(members) < 2:
        raise EnsembleError("an ensemble needs at least two members")
    first = next(iter(members.values()))
    for cid, p in members.items():
        if p.classes != first.classes:
            raise EnsembleError(
                f"ensemble members must share classes: {cid} predicts {list(p.classes)}, not {list(first.classes)}"
            )
        if p.names != first.names or not np.array_equal(p.labels, first.labels):
            raise EnsembleError(f"ensemble members must be tested on the same faces: {cid} was not")
    mean = replace(first, probs=ensemble_probs([p.probs for p in members.values()]))
    best = max(members, key=lambda cid: members[cid].accuracy)
    return EnsembleResult(tuple(members), mean, compute_metrics(mean), best, members[best].accuracy)


def select_ensemble(val_probs: dict[str, np.ndarray], val_labels: np.ndarray) -> list[str]:
    """Greedy forward selection (Caruana et al. 2004) on validation faces: add the member that raises the
    mean-probability ensemble's accuracy most, stop when none does. Weak members are left out, and the
    test split is never looked at."""
    chosen: list[str] = []
    best = -1.0
    while True:
        scores = {
            k: float((ensemble_probs([val_probs[c] for c in [*chosen, k]]).argmax(1) == val_labels).mean())
            for k in val_probs
            if k not in chosen
        }
        if not scores:
            return chosen
        name = max(scores, key=lambda k: scores[k])
        if scores[name] <= best:
            return chosen
        chosen.append(name)
        best = scores[name]


def embedding_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """t-SNE of penultimate-layer features to 2-D, for the embedding view."""
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(features) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)
