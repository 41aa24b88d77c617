"""OOD statistics and scores (numpy), and their hash check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radlens.errors import ModelIntegrityError
from radlens.inference.ood import (
    OodStats,
    fit_stats,
    mahalanobis_scores,
    save_stats,
    stats_for,
)
from radlens.models.card import OodSpec
from radlens.models.registry import sha256_of


def test_mahalanobis_is_the_distance_to_the_nearest_class_mean() -> None:
    stats = OodStats(np.array([[0.0, 0.0], [10.0, 0.0]]), np.diag([1.0, 4.0]))
    scores = mahalanobis_scores(np.array([[9.0, 0.0], [0.0, 1.0], [5.0, 0.0]]), stats)
    np.testing.assert_allclose(scores, [1.0, 2.0, 5.0])


def test_fitted_stats_separate_far_inputs_from_training_like_ones() -> None:
    rng = np.random.default_rng(0)
    train = np.r_[rng.normal(0, 1, (200, 16)), rng.normal(3, 1, (200, 16))]
    labels = np.r_[np.zeros(200, int), np.ones(200, int)]
    stats = fit_stats(train, labels)
    assert stats.means.shape == (2, 16) and stats.precision.shape == (16, 16)
    near = mahalanobis_scores(rng.normal(3, 1, (50, 16)), stats)
    far = mahalanobis_scores(rng.normal(12, 1, (50, 16)), stats)
    assert near.max() < far.min()


def test_fit_stats_survives_more_features_than_images() -> None:
    rng = np.random.default_rng(1)
    stats = fit_stats(rng.normal(size=(10, 64)), np.arange(10) % 2)
    assert np.isfinite(mahalanobis_scores(rng.normal(size=(3, 64)), stats)).all()


def test_stats_for_verifies_the_hash(tmp_path: Path) -> None:
    stats = OodStats(np.zeros((2, 3)), np.eye(3))
    save_stats(stats, tmp_path / "ood.npz")
    spec = OodSpec("mahalanobis", "ood.npz", sha256_of(tmp_path / "ood.npz"), 3.0, 0.05)
    loaded = stats_for(tmp_path, spec)
    assert loaded is not None and loaded.means.shape == (2, 3)
    assert stats_for(tmp_path, None) is None
    save_stats(OodStats(np.ones((2, 3)), np.eye(3)), tmp_path / "ood.npz")
    changed = OodSpec("mahalanobis", "ood.npz", "f" * 64, 3.0, 0.05)
    with pytest.raises(ModelIntegrityError, match="rerun radlens ood"):
        stats_for(tmp_path, changed)
