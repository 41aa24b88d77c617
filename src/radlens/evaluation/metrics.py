"""Classification metrics in plain numpy, shared by training and ``radlens evaluate``.

Conventions (so the card, the benchmark and the literature mean the same thing):
    * AUC: area under the ROC curve by the Mann-Whitney U statistic with ties counted as
      one half; multi-class AUC is the unweighted mean of one-vs-rest AUCs (as MedMNIST).
    * ECE: expected calibration error of the top-label confidence over 15 equal-width
      bins (Guo et al., ICML 2017).
"""

from __future__ import annotations

import math

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``."""
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def auc_binary(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of ``score`` for ``y_true`` in {0, 1}.

    Example:
        >>> auc_binary(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
        0.75
    """
    y = np.asarray(y_true).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _rankdata(np.asarray(score, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _rankdata(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(sorted_vals)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2
    return ranks


def auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Binary AUC of the second column, or macro one-vs-rest AUC for more classes."""
    if probs.shape[1] == 2:
        return auc_binary(y_true == 1, probs[:, 1])
    per_class = [auc_binary(y_true == k, probs[:, k]) for k in range(probs.shape[1])]
    return float(np.nanmean(per_class))


def accuracy(y_true: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(pred)))


def quadratic_weighted_kappa(y_true: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Cohen's kappa with quadratic weights, the usual agreement figure for ordinal grades.

    Example:
        >>> quadratic_weighted_kappa(np.array([0, 1, 2]), np.array([0, 1, 2]), 3)
        1.0
    """
    y, p = np.asarray(y_true, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    observed = np.zeros((n_classes, n_classes), dtype=np.float64)
    np.add.at(observed, (y, p), 1.0)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / max(1, len(y))
    grid = np.arange(n_classes, dtype=np.float64)
    weights = (grid[:, None] - grid[None, :]) ** 2 / max(1, (n_classes - 1) ** 2)
    denominator = float((weights * expected).sum())
    if denominator == 0.0:
        return math.nan
    return float(1.0 - (weights * observed).sum() / denominator)


def mean_abs_error(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute grade error (ordinal tasks)."""
    return float(np.mean(np.abs(np.asarray(y_true, np.float64) - np.asarray(pred, np.float64))))


def ece(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the top-label confidence."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def nll(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    p = np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, 1.0)
    return float(-np.log(p).mean())


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """Temperature minimizing validation NLL (golden-section search on log T in [-3, 3])."""
    lo, hi = -3.0, 3.0
    ratio = (math.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return nll(y_true, softmax(logits, math.exp(log_t)))

    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    return float(math.exp((lo + hi) / 2))


def youden_threshold(y_true: np.ndarray, score: np.ndarray) -> float:
    """Threshold maximizing sensitivity + specificity - 1 (ties: the lowest threshold)."""
    y = np.asarray(y_true).astype(bool)
    best_t, best_j = 0.5, -1.0
    for t in np.unique(score):
        pred = score >= t
        sens = (pred & y).sum() / max(1, y.sum())
        spec = (~pred & ~y).sum() / max(1, (~y).sum())
        if sens + spec - 1 > best_j:
            best_t, best_j = float(t), float(sens + spec - 1)
    return best_t


def sensitivity_threshold(y_true: np.ndarray, score: np.ndarray, sensitivity: float) -> float:
    """Highest threshold whose sensitivity is at least ``sensitivity``."""
    y = np.asarray(y_true).astype(bool)
    positives = np.sort(np.asarray(score)[y])[::-1]
    if len(positives) == 0:
        return 0.0
    k = max(0, math.ceil(sensitivity * len(positives)) - 1)
    return float(positives[min(k, len(positives) - 1)])


def binary_rates(y_true: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity, specificity and accuracy at a threshold."""
    y = np.asarray(y_true).astype(bool)
    pred = np.asarray(score) >= threshold
    return {
        "sensitivity": float((pred & y).sum() / max(1, y.sum())),
        "specificity": float((~pred & ~y).sum() / max(1, (~y).sum())),
        "accuracy": float((pred == y).mean()),
    }
