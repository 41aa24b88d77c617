"""Out-of-distribution scores from a model's own features (numpy only).

The score of an input is its smallest Mahalanobis distance to a class mean of the training
features, under one shared covariance (Lee et al., "A Simple Unified Framework for Detecting
Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018). Statistics are fitted by
``radlens ood`` (:mod:`radlens.training.ood`) and stored beside the model.

Example:
    >>> stats = OodStats(np.zeros((2, 3)), np.eye(3))
    >>> mahalanobis_scores(np.array([[0.0, 0.0, 2.0]]), stats).round(3)
    array([2.])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radlens.errors import ModelIntegrityError
from radlens.models.card import OodSpec
from radlens.models.registry import sha256_of

LOW_TRUST = "input unlike training data — low trust"


@dataclass(frozen=True, eq=False)
class OodStats:
    """Class means ``(K, D)`` and the shared precision matrix ``(D, D)``."""

    means: np.ndarray = field(repr=False)
    precision: np.ndarray = field(repr=False)


def fit_stats(features: np.ndarray, labels: np.ndarray, shrinkage: float = 0.1) -> OodStats:
    """Class means and a shrunk shared covariance of training features.

    ``shrinkage`` blends the covariance with its mean variance times the identity, which
    keeps it invertible when features outnumber images.
    """
    x = np.asarray(features, np.float64)
    classes = np.unique(labels)
    means = np.stack([x[labels == k].mean(axis=0) for k in classes])
    centred = x - means[np.searchsorted(classes, labels)]
    cov = centred.T @ centred / max(1, len(x) - len(classes))
    target = np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    shrunk = (1 - shrinkage) * cov + shrinkage * target
    return OodStats(means, np.linalg.pinv(shrunk, hermitian=True))


def mahalanobis_scores(features: np.ndarray, stats: OodStats) -> np.ndarray:
    """Smallest Mahalanobis distance of each row to a class mean."""
    x = np.asarray(features, np.float64)
    best = np.full(len(x), np.inf)
    for mean in stats.means:
        d = x - mean
        best = np.minimum(best, np.einsum("nd,de,ne->n", d, stats.precision, d))
    out: np.ndarray = np.sqrt(np.maximum(best, 0.0))
    return out


def save_stats(stats: OodStats, path: Path) -> None:
    """Write ``ood.npz`` in float32 (half the size; scores agree to ~1e-6 relative)."""
    np.savez(
        path, means=stats.means.astype(np.float32), precision=stats.precision.astype(np.float32)
    )


def stats_for(folder: Path, spec: OodSpec | None) -> OodStats | None:
    """The statistics a card's ``ood`` spec names, hash-verified; cached per file.

    Raises:
        ModelIntegrityError: the file is missing or differs from the card.
    """
    if spec is None:
        return None
    path = folder / spec.stats_file
    key = (str(path.resolve()), spec.sha256)
    if key not in _CACHE:
        if not path.exists() or sha256_of(path) != spec.sha256:
            raise ModelIntegrityError(
                f"{path}: OOD statistics missing or changed since the card; rerun radlens ood"
            )
        _CACHE[key] = load_stats(path)
    return _CACHE[key]


_CACHE: dict[tuple[str, str], OodStats] = {}


def load_stats(path: Path) -> OodStats:
    """Read ``ood.npz``.

    Raises:
        ModelIntegrityError: the file is missing or unreadable.
    """
    try:
        with np.load(path) as data:
            return OodStats(data["means"].astype(np.float64), data["precision"].astype(np.float64))
    except (OSError, KeyError, ValueError) as exc:
        raise ModelIntegrityError(f"{path}: cannot read OOD statistics: {exc}") from exc
