"""Classification metrics in plain numpy, shared by training and ``radlens evaluate``.

Conventions (so the card, the benchmark and the literature mean the same thing):
    * AUC: area under the ROC curve by the Mann-Whitney U statistic with ties counted as
      one half; multi-class AUC is the unweighted mean of one-vs-rest AUCs (as MedMNIST).
    * ECE: expected calibration error of the top-label confidence over 15 equal-width
      bins (Guo et al., ICML 2017).
    * Debiased ECE: the same bins, less the upward bias the plug-in ECE has at small n
      (:func:`ece_debiased`; Kumar, Liang and Ma, NeurIPS 2019, after Broecker 2012 and
      Ferro and Fricker 2012).

Multi-label tasks (ChestMNIST: each item has any number of K labels, each a yes/no with
probability ``sigmoid(logit_k / T)``) use the ``*_multilabel`` functions:
    * AUC: the unweighted mean over labels of each label's binary AUC; labels whose split
      has no positives or no negatives (AUC undefined) are left out of the mean.
    * ACC: the mean over labels of each label's accuracy with "yes" when ``p > 0.5``, as the
      MedMNIST ``getACC`` (so a probability of exactly 0.5 reads "no", as argmax does).
    * ECE: the mean over labels of each label's *binary ECE*, which is :func:`ece` of the
      two-way distribution ``(1 - p_k, p_k)``: the top-label confidence ``max(p_k, 1 - p_k)``
      against whether ``p_k > 0.5`` was right, over 15 equal-width bins. For one label this
      is exactly the ECE of a binary model with that probability.
    * NLL: the mean binary cross-entropy over every item and label.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``."""
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def sigmoid(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Element-wise logistic of ``logits / temperature``, without overflow.

    Example:
        >>> sigmoid(np.array([[0.0, 2.0]]), 2.0).round(4).tolist()
        [[0.5, 0.7311]]
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    out: np.ndarray = np.exp(-np.logaddexp(0.0, -z))
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


def ece_bins(confidence: np.ndarray, n_bins: int = 15) -> np.ndarray:
    """The ECE bin of each confidence: ``n_bins`` equal-width bins, right edges inclusive."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins: np.ndarray = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    return bins


def ece(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the top-label confidence."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    bins = ece_bins(confidence, n_bins)
    total = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


DEBIAS_RESAMPLES = 1000
"""Normal draws of the bins' accuracies per :func:`ece_debiased`."""


def ece_debiased(
    y_true: np.ndarray,
    probs: np.ndarray,
    n_bins: int = 15,
    resamples: int = DEBIAS_RESAMPLES,
    seed: int = 0,
) -> float:
    """The top-label ECE of :func:`ece` less its sampling bias: ``2 * plug-in - mean`` of the
    plug-in ECE recomputed with each bin's accuracy redrawn from a normal distribution with
    its binomial standard error (the "normal debiased" estimator of Kumar, Liang and Ma,
    *Verified Uncertainty Calibration*, NeurIPS 2019).

    The plug-in ECE of a perfectly calibrated model is not 0 at finite n: each bin's
    accuracy is a sample mean, and ``|accuracy - confidence|`` turns its noise into a
    positive error (``radlens.evaluation.calibration.ece_noise_floor``). The debiased figure
    takes much of that bias off (not all: at n = 681 a perfectly calibrated five-class model
    still reads about 0.03 against the plug-in's 0.045, and one whose true ECE is 0.03 reads
    about 0.034 against 0.05), so it can be held against a goal at a small n; it can be
    slightly negative.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> p = rng.uniform(0.5, 1.0, 400)
        >>> y = (rng.random(400) < p).astype(int)  # perfectly calibrated labels
        >>> probs = np.stack([p, 1 - p], axis=1)
        >>> bool(ece(1 - y, probs) > abs(ece_debiased(1 - y, probs)))
        True
    """
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    bins = ece_bins(confidence, n_bins)
    size = np.bincount(bins, minlength=n_bins).astype(np.float64)
    used = size > 0
    weight = size[used] / size.sum()
    accuracy = np.bincount(bins, correct, n_bins)[used] / size[used]
    mean_conf = np.bincount(bins, confidence, n_bins)[used] / size[used]
    plug_in = float(weight @ np.abs(accuracy - mean_conf))
    spread = np.sqrt(accuracy * (1.0 - accuracy) / size[used])
    draws = np.random.default_rng(seed).normal(accuracy, spread, (resamples, len(accuracy)))
    resampled = np.abs(draws - mean_conf) @ weight
    return 2.0 * plug_in - float(resampled.mean())


def ece_debiased_multilabel(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """Mean over labels of :func:`ece_debiased` of each label's two-way distribution (as
    :func:`ece_multilabel`)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true).astype(np.int64)
    return float(
        np.mean(
            [
                ece_debiased(y[:, k], np.stack([1.0 - p[:, k], p[:, k]], axis=1), n_bins)
                for k in range(p.shape[1])
            ]
        )
    )


def nll(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    p = np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, 1.0)
    return float(-np.log(p).mean())


def auc_multilabel(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean over labels of the binary AUC of each column (undefined labels left out).

    Example:
        >>> y = np.array([[0, 1], [1, 1], [1, 0]])
        >>> auc_multilabel(y, np.array([[0.2, 0.9], [0.7, 0.6], [0.6, 0.5]]))
        1.0
    """
    per_label = [auc_binary(y_true[:, k], probs[:, k]) for k in range(probs.shape[1])]
    defined = [v for v in per_label if not math.isnan(v)]
    return float(np.mean(defined)) if defined else math.nan


def accuracy_multilabel(y_true: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> float:
    """Mean over labels of each label's accuracy with "yes" when ``p > threshold``."""
    pred = np.asarray(probs) > threshold
    per_label = (pred == np.asarray(y_true).astype(bool)).mean(axis=0)
    return float(per_label.mean())


def ece_binary(y_true: np.ndarray, p: np.ndarray, n_bins: int = 15) -> float:
    """ECE of one yes/no label: :func:`ece` of the two-way distribution ``(1 - p, p)``."""
    p = np.asarray(p, dtype=np.float64)
    return ece(np.asarray(y_true).astype(np.int64), np.stack([1.0 - p, p], axis=1), n_bins)


def ece_multilabel(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """Mean over labels of :func:`ece_binary` (see the module docstring)."""
    return float(
        np.mean([ece_binary(y_true[:, k], probs[:, k], n_bins) for k in range(probs.shape[1])])
    )


def nll_multilabel(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean binary cross-entropy over every item and label."""
    y = np.asarray(y_true).astype(bool)
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    return float(-np.where(y, np.log(p), np.log1p(-p)).mean())


def _golden_section_log_t(loss: Callable[[float], float]) -> float:
    """The temperature whose log minimizes ``loss`` on [-3, 3] (golden-section search)."""
    lo, hi = -3.0, 3.0
    ratio = (math.sqrt(5) - 1) / 2
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


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """Temperature minimizing validation NLL (golden-section search on log T in [-3, 3])."""
    return _golden_section_log_t(lambda log_t: nll(y_true, softmax(logits, math.exp(log_t))))


def fit_temperature_multilabel(logits: np.ndarray, y_true: np.ndarray) -> float:
    """One temperature shared by every label, minimizing the mean binary cross-entropy of
    ``sigmoid(logits / T)`` on validation (golden-section search on log T in [-3, 3]).

    Example:
        >>> fit_temperature_multilabel(logits_val, y_val)  # doctest: +SKIP
        1.8
    """
    return _golden_section_log_t(
        lambda log_t: nll_multilabel(y_true, sigmoid(logits, math.exp(log_t)))
    )


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


def abstain_band(
    y_true: np.ndarray,
    score: np.ndarray,
    threshold: float,
    target_accuracy: float = 0.95,
    max_abstain: float = 0.2,
) -> tuple[float, float]:
    """The band around ``threshold`` where a binary call is too uncertain to make.

    The narrowest band ``[threshold - d, threshold + d]`` such that the calls outside it
    are right at least ``target_accuracy`` of the time on this data, abstaining on at most
    ``max_abstain`` of the items (if the target cannot be met within that, the widest band
    allowed). Returns ``(low, high)`` clipped to [0, 1]; ``(t, t)`` means never abstain.

    Example:
        >>> y, p = np.array([0, 0, 1, 1]), np.array([0.1, 0.55, 0.45, 0.9])
        >>> [round(v, 2) for v in abstain_band(y, p, 0.5, max_abstain=0.5)]
        [0.45, 0.55]
    """
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(score, np.float64)
    gaps = np.sort(np.unique(np.abs(p - threshold)))
    best = 0.0
    for gap in np.r_[0.0, gaps]:
        outside = np.abs(p - threshold) > gap if gap > 0 else np.ones(len(p), bool)
        if 1 - outside.mean() > max_abstain + 1e-12:
            break
        best = float(gap)
        if outside.any() and np.mean((p[outside] >= threshold) == y[outside]) >= target_accuracy:
            break
    return max(0.0, threshold - best), min(1.0, threshold + best)
