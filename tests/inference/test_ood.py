"""OOD statistics and scores (numpy): features, input statistics, the combined decision, and
the hash checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from radlens.errors import ModelIntegrityError
from radlens.inference.input_stats import STATISTICS, statistics_of
from radlens.inference.ood import (
    OodReading,
    OodStats,
    combined_score,
    fit_input_stats,
    fit_stats,
    flag_reasons,
    input_scores,
    load_input_stats,
    mahalanobis_scores,
    rank_gaussian,
    read_ood,
    reasons_warning,
    save_input_stats,
    save_stats,
    stats_for,
    unusual_statistics,
)
from radlens.inference.preprocess import prepare_2d
from radlens.models.card import InputSpec, InputStatsSpec, OodSpec
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


# --- input statistics and the combined decision ------------------------------------------

KIND = "image2d/1"
N_STATS = len(STATISTICS[KIND].names)


def combined(**overrides: float) -> InputStatsSpec:
    fields: dict[str, Any] = {
        "statistics": KIND,
        "stats_file": "ood_inputs.npz",
        "sha256": "0" * 64,
        "feature_median": 2.0,
        "input_median": 4.0,
        "feature_threshold": 6.0,
        "input_threshold": 12.0,
        "product_threshold": 2.0,
        "guard_quantile": 0.99,
        "val_flag_rate": 0.05,
    }
    return InputStatsSpec(**(fields | overrides))


def test_input_scores_grow_with_distance_from_the_training_statistics() -> None:
    rng = np.random.default_rng(2)
    fitted = fit_input_stats(rng.normal(size=(300, N_STATS)), KIND)
    near = input_scores(rng.normal(size=(50, N_STATS)), fitted)
    far = input_scores(
        rng.normal(size=(50, N_STATS)) + np.r_[0, 0, 0, 12, np.zeros(N_STATS - 4)], fitted
    )
    assert near.max() < far.min()


def test_one_sided_statistics_count_only_on_their_degraded_side() -> None:
    rng = np.random.default_rng(3)
    fitted = fit_input_stats(rng.normal(size=(300, N_STATS)), KIND)
    names = STATISTICS[KIND].names
    levels, colour = names.index("grey_levels_bits"), names.index("colour_chroma")
    typical = np.zeros((1, N_STATS))
    for column, sign, counts in ((levels, +1, False), (levels, -1, True), (colour, +1, True)):
        shifted = typical.copy()
        shifted[0, column] = 8 * sign
        gap = input_scores(shifted, fitted)[0] - input_scores(typical, fitted)[0]
        assert bool(gap > 3) == counts, (names[column], sign)


def test_a_statistic_that_never_varied_in_training_has_a_floor_under_its_spread() -> None:
    values = np.random.default_rng(4).normal(size=(100, N_STATS))
    values[:, STATISTICS[KIND].names.index("colour_chroma")] = 0.0  # greyscale training images
    fitted = fit_input_stats(values, KIND)
    tinted = np.zeros((1, N_STATS))
    tinted[0, STATISTICS[KIND].names.index("colour_chroma")] = 0.001
    assert input_scores(tinted, fitted)[0] < input_scores(np.zeros((1, N_STATS)), fitted)[0] + 1


def test_fit_input_stats_needs_one_column_per_statistic() -> None:
    with pytest.raises(ValueError, match="statistics"):
        fit_input_stats(np.zeros((10, 3)), KIND)


def test_combined_score_flags_a_joint_shift_and_either_extreme_score() -> None:
    spec = combined()
    assert combined_score(2.0, 4.0, spec) < 1  # both at their medians
    assert combined_score(1.0, 1.0, spec) < 1  # more typical than the median is not unusual
    assert combined_score(3.0, 6.0, spec) >= 1  # 1.5 x 1.5 >= 2: both somewhat unusual
    assert combined_score(3.0, 4.0, spec) < 1  # one somewhat unusual score is not enough
    assert combined_score(6.0, 1.0, spec) >= 1  # the feature score alone is extreme
    assert combined_score(1.0, 12.0, spec) >= 1  # the input score alone is extreme


def test_input_stats_round_trip_and_refuse_another_statistic_set(tmp_path: Path) -> None:
    fitted = fit_input_stats(np.random.default_rng(5).normal(size=(50, N_STATS)), KIND)
    save_input_stats(fitted, tmp_path / "ood_inputs.npz")
    back = load_input_stats(tmp_path / "ood_inputs.npz")
    assert back.kind == KIND and back.quantiles is not None and fitted.quantiles is not None
    np.testing.assert_allclose(back.precision, fitted.precision)
    np.testing.assert_array_equal(back.quantiles, fitted.quantiles)
    # A file fitted before rank-Gaussian z-scores has no quantiles: read with robust ones.
    robust = fit_input_stats(np.random.default_rng(5).normal(size=(50, N_STATS)), KIND, rank=False)
    save_input_stats(robust, tmp_path / "robust.npz")
    with np.load(tmp_path / "robust.npz") as data:
        assert "quantiles" not in data
    old = load_input_stats(tmp_path / "robust.npz")
    probe = np.random.default_rng(1).normal(size=(3, N_STATS))
    assert old.quantiles is None
    np.testing.assert_allclose(input_scores(probe, old), input_scores(probe, robust))
    np.savez(
        tmp_path / "old.npz",
        kind=np.array(KIND),
        names=np.array(["mean", "std"]),
        centre=np.zeros(2),
        scale=np.ones(2),
        mean=np.zeros(2),
        precision=np.eye(2),
    )
    with pytest.raises(ModelIntegrityError, match="rerun radlens ood"):
        load_input_stats(tmp_path / "old.npz")


def test_stats_for_loads_and_verifies_the_input_statistics(tmp_path: Path) -> None:
    save_stats(OodStats(np.zeros((2, 3)), np.eye(3)), tmp_path / "ood.npz")
    fitted = fit_input_stats(np.random.default_rng(6).normal(size=(50, N_STATS)), KIND)
    save_input_stats(fitted, tmp_path / "ood_inputs.npz")
    inputs = combined(sha256=sha256_of(tmp_path / "ood_inputs.npz"))
    spec = OodSpec("mahalanobis", "ood.npz", sha256_of(tmp_path / "ood.npz"), 3.0, 0.05)
    assert stats_for(tmp_path, spec).inputs is None  # type: ignore[union-attr]
    loaded = stats_for(tmp_path, replace(spec, inputs=inputs))
    assert loaded is not None and loaded.inputs is not None and loaded.inputs.kind == KIND
    tampered = replace(spec, inputs=replace(inputs, sha256="e" * 64))
    with pytest.raises(ModelIntegrityError, match="rerun radlens ood"):
        stats_for(tmp_path, tampered)


def test_read_ood_decides_on_features_alone_without_input_statistics(make_card) -> None:  # type: ignore[no-untyped-def]
    card = make_card(ood=OodSpec("mahalanobis", "ood.npz", "0" * 64, 2.0, 0.05))
    stats = OodStats(np.zeros((1, 2)), np.eye(2))
    raws = [np.zeros((8, 8))] * 2
    low, high = read_ood(
        card, stats, np.array([[1.0, 0.0], [3.0, 4.0]]), raws, np.zeros((2, 1, 8, 8))
    )
    assert (low.score, low.feature, low.inputs, low.flagged) == (0.5, 1.0, None, False)
    assert (high.score, high.flagged) == (2.5, True)
    assert read_ood(card, None, None, raws, np.zeros((2, 1, 8, 8))) == [OodReading()] * 2


def test_read_ood_combines_features_and_input_statistics(make_card) -> None:  # type: ignore[no-untyped-def]
    spec_2d = InputSpec(size=(32, 32))
    rng = np.random.default_rng(7)
    smooth = [
        np.round(np.add.outer(np.arange(32.0), np.arange(32.0)) * 4 + rng.normal(0, 3, (32, 32)))
        .clip(0, 255)
        .astype(np.uint8)
        for _ in range(40)
    ]
    statistics = STATISTICS[KIND]
    values = np.array(
        [statistics_of(statistics, r, prepare_2d(r, spec_2d)[0], spec_2d) for r in smooth]
    )
    fitted = fit_input_stats(values, KIND)
    typical = float(np.median(input_scores(values, fitted)))
    inputs = combined(feature_median=1.0, input_median=typical, input_threshold=10 * typical)
    card = make_card(
        input=spec_2d,
        ood=OodSpec("mahalanobis", "ood.npz", "0" * 64, 2.0, 0.05, inputs=inputs),
    )
    stats = OodStats(np.zeros((1, 2)), np.eye(2), fitted)
    faded = np.round(smooth[0] * 0.2 + 100).astype(np.uint8)  # contrast reduced to a fifth
    raws = [smooth[0], faded]
    batch = np.stack([prepare_2d(r, spec_2d)[0] for r in raws])
    features = np.array([[1.0, 0.0], [1.0, 0.0]])  # the network sees both alike
    clean, low_contrast = read_ood(card, stats, features, raws, batch)
    assert not clean.flagged and clean.inputs is not None and clean.inputs < 2 * typical
    assert low_contrast.flagged and low_contrast.feature == clean.feature == 1.0
    assert low_contrast.score == pytest.approx(combined_score(1.0, low_contrast.inputs, inputs))
    # The flag says why: 256 levels squeezed into ~50 leave flat steps (posterized), tens of
    # spreads beyond training (about 40). The clean image gets no reasons.
    assert clean.reasons == ()
    assert low_contrast.reasons[0][0] == "flat_steps" and low_contrast.reasons[0][1] > 10


def test_unusual_statistics_name_the_furthest_from_training_largest_first() -> None:
    rng = np.random.default_rng(3)
    fitted = fit_input_stats(rng.normal(size=(400, 29)), "image2d/4")
    names = STATISTICS["image2d/4"].names
    values = np.zeros(29)
    values[names.index("mean")] = -5.0  # darker
    values[names.index("level_gaps_decoded")] = 20.0  # one-sided, degraded side
    values[names.index("gradient")] = 2.0  # within 3 spreads: not a reason
    found = unusual_statistics(values, fitted)
    assert [n for n, _ in found] == ["level_gaps_decoded", "mean"]
    assert found[0][1] > 10 and found[1][1] < -3
    assert reasons_warning(found) == (
        "unlike training data in: empty grey levels (a contrast, gamma or brightness change); "
        "darker",
    )
    # The good side of a one-sided statistic is no reason; at most three are named.
    values[names.index("level_gaps_decoded")] = -20.0
    assert "level_gaps_decoded" not in dict(unusual_statistics(values, fitted))
    assert len(unusual_statistics(np.full(29, 9.0), fitted)) == 3
    # Statistics that read alike are named once, the furthest of them.
    grainy = np.zeros(29)
    grainy[names.index("autocorr_lag1")] = -9.0
    grainy[names.index("autocorr_lag2")] = -6.0
    grainy[names.index("mean")] = 4.0
    assert [n for n, _ in unusual_statistics(grainy, fitted)] == ["autocorr_lag1", "mean"]
    assert unusual_statistics(np.zeros(29), fitted) == () and reasons_warning(()) == ()


def test_rank_gaussian_z_scores_follow_the_training_ranks_and_grow_beyond_them() -> None:
    names = STATISTICS["image2d/4"].names
    train = np.tile(np.linspace(0.0, 1.0, 101)[:, None], (1, len(names)))
    fitted = fit_input_stats(train, "image2d/4")
    mean = names.index("mean")  # two-sided
    z = rank_gaussian(np.array([[0.5] * len(names), [0.9] * len(names)]), fitted)[:, mean]
    # 0.9 is the 91st of 101 values: mid-rank 90.5, p = 91 / 102.
    assert z[0] == 0.0 and z[1] == pytest.approx(NormalDist().inv_cdf(91 / 102))
    beyond = rank_gaussian(np.array([[1.0] * len(names), [3.0] * len(names)]), fitted)[:, mean]
    assert beyond[0] == pytest.approx(NormalDist().inv_cdf(101 / 102))  # the largest
    assert beyond[1] == pytest.approx(beyond[0] + 2.0 / fitted.scale[mean])  # 2 beyond it
    # Ties share their middle rank: a statistic 0 for 91 of 101 training images.
    gaps = names.index("level_gaps_decoded")
    train[:, gaps] = np.r_[np.zeros(91), np.linspace(0.01, 0.1, 10)]
    fitted = fit_input_stats(train, "image2d/4")
    values = np.zeros((2, len(names)))
    values[1, gaps] = 0.05
    zero, some = rank_gaussian(values, fitted)[:, gaps]
    assert zero == 0.0 and 1.5 < some < 2.0  # one-sided: the tie's middle is below the median


def test_a_shift_in_one_tight_statistic_is_not_swamped_by_heavy_tails_in_others() -> None:
    """The robust z-score's failure: statistics with heavy training tails (some images with
    a large clipped-white area) dominate the covariance, so a 4-spread shift in one tightly
    distributed statistic barely moves the distance. On the rank-Gaussian scale every
    statistic is standard normal in training."""
    rng = np.random.default_rng(8)
    train = rng.normal(size=(1000, N_STATS))
    train[:, :6] = rng.standard_cauchy(size=(1000, 6))  # heavy-tailed statistics
    clean = rng.normal(size=(300, N_STATS))
    clean[:, :6] = rng.standard_cauchy(size=(300, 6))
    shifted = clean.copy()
    shifted[:, 10] += 4.0  # one tight statistic, 4 spreads off
    auroc = {}
    for rank in (False, True):
        fitted = fit_input_stats(train, KIND, rank=rank)
        a, b = input_scores(clean, fitted), input_scores(shifted, fitted)
        auroc[rank] = float(np.mean(b[:, None] > a[None, :]))
    assert auroc[True] > auroc[False] + 0.03, auroc  # about 0.88 vs 0.83


def test_image_statistics_are_fitted_rank_gaussian_and_mask_shapes_robust() -> None:
    rng = np.random.default_rng(9)
    image = fit_input_stats(rng.normal(size=(60, 29)), "image2d/4")
    mask = fit_input_stats(rng.normal(size=(60, 17)), "mask3d/2")
    assert image.quantiles is not None and image.quantiles.shape == (60, 29)
    assert mask.quantiles is None  # vessel vs adrenal masks: 0.9946 robust, 0.9899 ranked
    assert fit_input_stats(rng.normal(size=(60, 17)), "mask3d/2", rank=True).quantiles is not None


def test_a_flag_without_a_far_statistic_names_the_nearer_ones_as_somewhat() -> None:
    rng = np.random.default_rng(3)
    fitted = fit_input_stats(rng.normal(size=(400, 29)), "image2d/4")
    names = STATISTICS["image2d/4"].names
    values = np.zeros(29)
    values[names.index("mean")] = -2.5  # darker, but within the training images
    values[names.index("gradient")] = 1.0
    assert unusual_statistics(values, fitted) == ()
    [(name, z)] = flag_reasons(values, fitted)
    assert name == "mean" and -3 < z < -2
    assert reasons_warning(((name, z),)) == ("unlike training data in: darker (somewhat)",)
    values[names.index("level_gaps_decoded")] = 20.0  # one far: only the far ones are named
    assert [n for n, _ in flag_reasons(values, fitted)] == ["level_gaps_decoded"]
