"""How much does the way an ensemble combines its members matter? Rules compared on saved probabilities.

    python -m bench.accuracy --save-probs probs.npz [--tta flip]
    python -m bench.ensemble_rules probs.npz [--labels fer2013]

Every rule is fitted on PublicTest only. Its PublicTest accuracy is a 5-fold cross-validation (fit on four
fifths, score the fifth), which is how one would choose between rules; PrivateTest is reported, never used.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from fer_core.evaluation import ensemble_probs, select_ensemble

Combiner = Callable[[np.ndarray], np.ndarray]  # member probabilities (M, N, C) -> ensemble scores (N, C)


def _accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float((scores.argmax(1) == labels).mean())


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, 1e-7, 1.0))


def mean_of_all(val: np.ndarray, labels: np.ndarray) -> Combiner:
    return lambda p: ensemble_probs(list(p))


def geometric_mean(val: np.ndarray, labels: np.ndarray) -> Combiner:
    return lambda p: softmax(_log(p).mean(0), axis=1)


def greedy_forward(val: np.ndarray, labels: np.ndarray) -> Combiner:
    """fer_core's rule (the app and bench/accuracy.py): each member at most once."""
    chosen = [int(k) for k in select_ensemble({str(m): v for m, v in enumerate(val)}, labels)]
    return lambda p: ensemble_probs([p[m] for m in chosen])


def greedy_with_replacement(val: np.ndarray, labels: np.ndarray, rounds: int = 30) -> Combiner:
    """Caruana et al. 2004 in full: members may be added again (a weight), the best round is kept."""
    counts = np.zeros(len(val))
    best_counts, best = counts.copy(), -1.0
    for _ in range(rounds):
        trials = [_accuracy(np.tensordot(counts + np.eye(len(val))[m], val, 1), labels) for m in range(len(val))]
        counts[int(np.argmax(trials))] += 1
        if max(trials) > best:
            best, best_counts = max(trials), counts.copy()
    return lambda p: np.tensordot(best_counts, p, 1)


def log_linear(val: np.ndarray, labels: np.ndarray) -> Combiner:
    """Non-negative weights on the members' log-probabilities, fitted by log-likelihood."""
    logs = _log(val)

    def nll(w: np.ndarray) -> float:
        return -float(log_softmax(np.tensordot(w, logs, 1), axis=1)[np.arange(len(labels)), labels].mean())

    w = minimize(nll, np.full(len(val), 1.0 / len(val)), bounds=[(0, None)] * len(val), method="L-BFGS-B").x
    return lambda p: np.tensordot(w, _log(p), 1)


def stacking(val: np.ndarray, labels: np.ndarray) -> Combiner:
    """A strongly regularised logistic regression on all members' log-probabilities side by side."""

    def flat(p: np.ndarray) -> np.ndarray:
        return _log(p).transpose(1, 0, 2).reshape(p.shape[1], -1)

    model = LogisticRegression(C=0.01, max_iter=2000).fit(flat(val), labels)
    return lambda p: model.predict_proba(flat(p))


RULES = {
    "mean of all": mean_of_all,
    "geometric mean of all": geometric_mean,
    "greedy forward (fer_core)": greedy_forward,
    "greedy with replacement": greedy_with_replacement,
    "log-linear weights": log_linear,
    "stacking (logistic regression)": stacking,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probs", help="the .npz written by bench/accuracy.py --save-probs")
    parser.add_argument("--labels", default="fer2013", help="label source of the group to compare")
    args = parser.parse_args()
    saved = np.load(args.probs)
    prefix = f"{args.labels}|"
    ids = sorted({k.split("|")[1] for k in saved.files if k.startswith(prefix) and k.split("|")[1] != "labels"})
    if len(ids) < 2:
        print(f"{args.probs}: fewer than two {args.labels} models", file=sys.stderr)
        return 1
    val, test = (np.stack([saved[f"{prefix}{i}|{split}"] for i in ids]) for split in ("val", "test"))
    val_labels, test_labels = saved[f"{prefix}labels|val"], saved[f"{prefix}labels|test"]
    print(f"{len(ids)} {args.labels} models, TTA {saved['tta']}: {', '.join(ids)}\n")
    header = f"{'rule':<32} {'PublicTest 5-fold CV':>21} {'PrivateTest acc':>16} {'macro F1':>9}"
    print(header)
    print("-" * len(header))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    for name, rule in RULES.items():
        cv = [_accuracy(rule(val[:, a], val_labels[a])(val[:, b]), val_labels[b]) for a, b in folds.split(val_labels, val_labels)]
        pred = rule(val, val_labels)(test).argmax(1)
        print(
            f"{name:<32} {np.mean(cv):>21.4f} {float((pred == test_labels).mean()):>16.4f} "
            f"{f1_score(test_labels, pred, average='macro'):>9.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
