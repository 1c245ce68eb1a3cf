"""Metrics from stored predictions (scikit-learn), model comparison, ensembles and efficiency figures."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import torch
from scipy.stats import binomtest
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
from torch import nn

from .input_spec import InputSpec


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


def reliability_curve(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[dict]:
    """Per-bin confidence, accuracy and count, for a calibration plot."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    return [
        {"bin": b, "confidence": float(conf[which == b].mean()), "accuracy": float(correct[which == b].mean()), "count": int((which == b).sum())}
        for b in range(bins)
        if (which == b).any()
    ]


def compute_metrics(probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, classes: list[str] | tuple[str, ...]) -> dict:
    """Everything the Evaluate views show, from probabilities (N,C) and true labels (N,)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
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
        roc[classes[c]] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": float(roc_auc_score(onehot[:, c], probs[:, c]))}
    clipped = np.clip(probs, 1e-7, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    return {
        "n": int(len(labels)),
        "accuracy": float(accuracy_score(labels, pred)),
        "loss": float(log_loss(labels, clipped, labels=ids)),
        "macro_f1": float(f1_score(labels, pred, average="macro", labels=ids, zero_division=0)),
        "weighted_f1": float(f1_score(labels, pred, average="weighted", labels=ids, zero_division=0)),
        "top2_accuracy": float(top_k_accuracy_score(labels, probs, k=2, labels=ids)) if k > 2 else 1.0,
        "ece": expected_calibration_error(probs, labels),
        "per_class_accuracy": {c: float(a) for c, a in zip(classes, per_class)},
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_normalized": np.divide(cm, row_sums, out=np.zeros_like(cm, dtype=float), where=row_sums > 0).tolist(),
        "classification_report": classification_report(
            labels, pred, labels=ids, target_names=list(classes), output_dict=True, zero_division=0
        ),
        "roc": roc,
        "micro_auc": float(roc_auc_score(onehot[:, present].ravel(), probs[:, present].ravel())) if present.any() else float("nan"),
        "reliability": reliability_curve(probs, labels),
    }


def headline(metrics: dict) -> dict:
    """The few numbers stored in meta.json and shown in leaderboards."""
    keys = ("n", "accuracy", "loss", "macro_f1", "weighted_f1", "top2_accuracy", "ece", "micro_auc", "per_class_accuracy")
    return {k: metrics[k] for k in keys}


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


def misclassified(probs: np.ndarray, labels: np.ndarray, true_class: int | None = None,
                  predicted_class: int | None = None) -> np.ndarray:
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


def ensemble_probs(prob_list: list[np.ndarray]) -> np.ndarray:
    """Mean of the members' probabilities (same faces, same class order)."""
    shapes = {p.shape for p in prob_list}
    if len(shapes) != 1:
        raise ValueError(f"ensemble members disagree on the test set or classes: shapes {sorted(shapes)}")
    return np.mean(np.stack(prob_list), axis=0)


def select_ensemble(val_probs: dict[str, np.ndarray], val_labels: np.ndarray) -> list[str]:
    """Greedy forward selection (Caruana et al. 2004) on validation faces: add the member that raises the
    mean-probability ensemble's accuracy most, stop when none does. Weak members are left out, and the
    test split is never looked at."""
    chosen: list[str] = []
    best = -1.0
    while True:
        scores = {k: float((ensemble_probs([val_probs[c] for c in chosen + [k]]).argmax(1) == val_labels).mean())
                  for k in val_probs if k not in chosen}
        if not scores:
            return chosen
        name = max(scores, key=scores.get)
        if scores[name] <= best:
            return chosen
        chosen.append(name)
        best = scores[name]


def count_macs(model: nn.Module, spec: InputSpec) -> int:
    """Multiply-accumulates for one face, from torch's own FLOP counter (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    x = torch.zeros(1, spec.channels, spec.size, spec.size)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return int(counter.get_total_flops() // 2)


@torch.inference_mode()
def measure_speed(model: nn.Module, spec: InputSpec, repeats: int = 20, batch: int = 256) -> dict:
    """CPU latency at batch 1 (median ms) and throughput at `batch` (images/s)."""
    model = model.eval().cpu()
    one = torch.zeros(1, spec.channels, spec.size, spec.size)
    many = torch.zeros(batch, spec.channels, spec.size, spec.size)
    for _ in range(3):
        model(one)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model(one)
        times.append(time.perf_counter() - t)
    model(many)
    t = time.perf_counter()
    model(many)
    elapsed = time.perf_counter() - t
    return {"latency_ms_b1": float(np.median(times) * 1000), "throughput_b256": float(batch / elapsed), "threads": torch.get_num_threads()}


def efficiency(model: nn.Module, spec: InputSpec) -> dict:
    """MACs and CPU speed, stamped with the machine: figures from different machines must not be compared blindly."""
    return {"macs": count_macs(model, spec), **measure_speed(model, spec), "measured_on": platform.platform(),
            "processor": platform.processor() or "unknown", "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def embedding_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """t-SNE of penultimate-layer features to 2-D, for the embedding view."""
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(features) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)
