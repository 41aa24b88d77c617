"""Metrics against values worked out by hand, and calibration on synthetic logits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench_helpers import load_benchmark
from radlens.evaluation.metrics import (
    accuracy,
    auc,
    auc_binary,
    binary_rates,
    ece,
    ece_debiased,
    ece_debiased_multilabel,
    ece_multilabel,
    fit_temperature,
    nll,
    sensitivity_threshold,
    softmax,
    youden_threshold,
)


def test_softmax_rows_sum_to_one_and_temperature_softens() -> None:
    logits = np.array([[0.0, 2.0], [1000.0, 0.0]])
    p = softmax(logits)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p[0, 1] == pytest.approx(1 / (1 + math.exp(-2)))
    assert p[1, 0] == pytest.approx(1.0)  # no overflow
    assert softmax(logits, 4.0)[0, 1] == pytest.approx(1 / (1 + math.exp(-0.5)))


def test_auc_without_ties() -> None:
    # Pairs (pos, neg): (0.35, 0.1) ok, (0.35, 0.4) wrong, (0.8, *) ok -> 3 of 4.
    assert auc_binary(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75


def test_auc_counts_ties_as_one_half() -> None:
    # Pairs: (0.5, 0.5) tie -> 0.5, (0.5, 0.2) 1, (0.9, 0.5) 1, (0.9, 0.2) 1 -> 3.5 / 4.
    y = np.array([0, 1, 0, 1])
    assert auc_binary(y, np.array([0.5, 0.5, 0.2, 0.9])) == 0.875
    assert auc_binary(y, np.full(4, 0.3)) == 0.5


def test_auc_perfect_and_inverted() -> None:
    y = np.array([0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.9])
    assert auc_binary(y, s) == 1.0
    assert auc_binary(y, -s) == 0.0


def test_auc_of_one_class_is_nan() -> None:
    assert math.isnan(auc_binary(np.ones(3), np.array([0.1, 0.2, 0.3])))


def test_auc_uses_the_second_column_for_two_classes() -> None:
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    assert auc(y, probs) == 0.75


def test_multiclass_auc_is_the_mean_of_one_vs_rest() -> None:
    y = np.array([0, 1, 2, 2])
    probs = np.array([[0.3, 0.1, 0.6], [0.1, 0.8, 0.1], [0.1, 0.5, 0.4], [0.1, 0.2, 0.7]])
    # Class 0: pos 0.3 beats 0.1, 0.1, 0.1 -> 1. Class 1: pos 0.8 beats 0.1, 0.5, 0.2 -> 1.
    # Class 2: pos {0.4, 0.7} vs neg {0.6, 0.1}: 0.4 < 0.6 is the one miss -> 3/4.
    assert auc_binary(y == 2, probs[:, 2]) == 0.75
    assert auc(y, probs) == pytest.approx((1 + 1 + 0.75) / 3)


def test_accuracy_and_nll() -> None:
    assert accuracy(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])) == 0.75
    probs = np.array([[0.5, 0.5], [0.1, 0.9]])
    assert nll(np.array([0, 1]), probs) == pytest.approx(-(math.log(0.5) + math.log(0.9)) / 2)


def test_ece_of_a_perfectly_calibrated_toy_is_zero() -> None:
    # 10 at confidence 0.8 with 8 right, 4 at confidence 0.75 with 3 right.
    probs = np.array([[0.2, 0.8]] * 10 + [[0.75, 0.25]] * 4)
    y = np.array([1] * 8 + [0] * 2 + [0] * 3 + [1])
    assert ece(y, probs) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_an_overconfident_toy_is_the_gap() -> None:
    probs = np.array([[0.1, 0.9]] * 10)
    y = np.array([1] * 5 + [0] * 5)
    assert ece(y, probs) == pytest.approx(0.4)


def _mean_eces(gap: float, n: int = 681, trials: int = 60) -> tuple[float, float]:
    """Mean plug-in and debiased ECE over ``trials`` draws with true ECE ``gap``."""
    rng = np.random.default_rng(0)
    plug_in, debiased = [], []
    for trial in range(trials):
        y, p = load_benchmark("bench_ece").draws(rng, n, gap)  # true ECE = gap
        plug_in.append(ece(y, p))
        debiased.append(ece_debiased(y, p, seed=trial))
    return float(np.mean(plug_in)), float(np.mean(debiased))


def test_ece_debiased_takes_much_of_the_bias_off_a_calibrated_model() -> None:
    plug_in, debiased = _mean_eces(0.0)
    assert debiased < 0.7 * plug_in


def test_ece_debiased_reads_near_the_true_error_at_the_goal() -> None:
    # At the goal (0.03) the plug-in reads about 0.02 high at n = 681; the debiased figure
    # within 0.01 of the truth, so the goal can be judged on it.
    plug_in, debiased = _mean_eces(0.03)
    assert abs(debiased - 0.03) < 0.01
    assert abs(debiased - 0.03) < 0.6 * abs(plug_in - 0.03)


def test_ece_debiased_stays_near_a_larger_error() -> None:
    _, debiased = _mean_eces(0.06)
    assert abs(debiased - 0.06) < 0.01


def test_ece_debiased_equals_the_plug_in_where_no_bin_can_vary() -> None:
    # Every bin all right or all wrong: no binomial noise to take off.
    probs = np.array([[0.1, 0.9]] * 10 + [[0.4, 0.6]] * 5)
    y = np.array([1] * 10 + [0] * 5)
    assert ece_debiased(y, probs) == pytest.approx(ece(y, probs))


def test_ece_debiased_multilabel_is_the_mean_over_labels() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, (300, 3))
    y = (rng.random((300, 3)) < p).astype(int)
    each = [ece_debiased(y[:, k], np.stack([1 - p[:, k], p[:, k]], axis=1)) for k in range(3)]
    assert ece_debiased_multilabel(y, p) == pytest.approx(np.mean(each))
    assert ece_debiased_multilabel(y, p) < ece_multilabel(y, p)


def test_fit_temperature_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    calibrated = rng.normal(0, 2.0, size=(20000, 2))
    p1 = softmax(calibrated)[:, 1]
    y = (rng.random(len(p1)) < p1).astype(int)
    overconfident = calibrated * 2.5  # a model whose logits are 2.5x too large
    assert fit_temperature(overconfident, y) == pytest.approx(2.5, rel=0.06)
    assert fit_temperature(calibrated, y) == pytest.approx(1.0, rel=0.06)


def test_youden_threshold_picks_the_lowest_of_equal_maxima() -> None:
    # t=0.35: sens 1, spec 0.5 (J 0.5); t=0.8: sens 0.5, spec 1 (J 0.5) -> lowest wins.
    y = np.array([0, 0, 1, 1])
    assert youden_threshold(y, np.array([0.1, 0.4, 0.35, 0.8])) == 0.35
    assert youden_threshold(y, np.array([0.1, 0.2, 0.7, 0.9])) == 0.7


@pytest.mark.parametrize(("target", "threshold"), [(0.8, 0.6), (0.95, 0.5), (1.0, 0.5), (0.2, 0.9)])
def test_sensitivity_threshold_is_the_highest_reaching_the_target(
    target: float, threshold: float
) -> None:
    y = np.array([1, 1, 1, 1, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.55, 0.1])
    got = sensitivity_threshold(y, s, target)
    assert got == threshold
    assert binary_rates(y, s, got)["sensitivity"] >= target


def test_sensitivity_threshold_without_positives_is_zero() -> None:
    assert sensitivity_threshold(np.zeros(3), np.array([0.1, 0.2, 0.3]), 0.9) == 0.0


def test_binary_rates_at_a_threshold() -> None:
    y = np.array([1, 1, 0, 0])
    rates = binary_rates(y, np.array([0.9, 0.4, 0.6, 0.1]), 0.5)
    assert rates == {"sensitivity": 0.5, "specificity": 0.5, "accuracy": 0.5}


def test_quadratic_weighted_kappa_perfect_chance_and_reversed() -> None:
    from radlens.evaluation.metrics import quadratic_weighted_kappa

    y = np.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    assert quadratic_weighted_kappa(y, y, 5) == pytest.approx(1.0)
    assert quadratic_weighted_kappa(y, 4 - y, 5) < -0.9
    # One grade off everywhere is still strong agreement; kappa penalizes far errors more.
    near = quadratic_weighted_kappa(y, np.clip(y + 1, 0, 4), 5)
    far = quadratic_weighted_kappa(y, np.where(y < 2, 4, 0), 5)
    assert near > 0.7 > far
    assert math.isnan(quadratic_weighted_kappa(np.zeros(4, int), np.zeros(4, int), 5))


def test_quadratic_weighted_kappa_matches_a_hand_computed_value() -> None:
    from radlens.evaluation.metrics import quadratic_weighted_kappa

    # observed [[1,1],[0,2]]; expected [[0.5,1.5],[0.5,1.5]]; w = [[0,1],[1,0]]
    # kappa = 1 - 1 / (1.5 + 0.5) = 0.5
    assert quadratic_weighted_kappa(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2) == 0.5


def test_mean_abs_error_counts_grade_distance() -> None:
    from radlens.evaluation.metrics import mean_abs_error

    assert mean_abs_error(np.array([0, 2, 4]), np.array([1, 2, 1])) == pytest.approx(4 / 3)


# --- multi-label (ChestMNIST) ------------------------------------------------------------


def test_sigmoid_is_the_binary_softmax_and_does_not_overflow() -> None:
    from radlens.evaluation.metrics import sigmoid

    z = np.array([[-1000.0, -2.0, 0.0, 0.7, 1000.0]])
    p = sigmoid(z)
    assert p[0, 0] == 0.0 and p[0, 2] == 0.5 and p[0, 4] == 1.0
    assert p[0, 1] == pytest.approx(1 / (1 + math.exp(2.0)))
    two_way = np.stack([np.zeros_like(z[0]), z[0]], axis=1)
    np.testing.assert_allclose(sigmoid(z, 3.0)[0], softmax(two_way, 3.0)[:, 1])


def test_multilabel_auc_is_the_mean_over_labels_leaving_out_undefined_ones() -> None:
    from radlens.evaluation.metrics import auc_multilabel

    y = np.array([[0, 1, 1], [0, 0, 1], [1, 1, 1], [1, 0, 1]])
    probs = np.array([[0.1, 0.9, 0.5], [0.4, 0.2, 0.5], [0.35, 0.8, 0.5], [0.8, 0.3, 0.5]])
    # Label 0: 0.75 (as test_auc_without_ties); label 1: 1.0; label 2: no negatives.
    assert auc_multilabel(y, probs) == pytest.approx((0.75 + 1.0) / 2)
    assert math.isnan(auc_multilabel(np.ones((3, 2), int), np.full((3, 2), 0.5)))


def test_multilabel_accuracy_is_the_mean_per_label_accuracy_above_one_half() -> None:
    from radlens.evaluation.metrics import accuracy_multilabel

    y = np.array([[1, 0], [0, 0], [1, 1], [0, 1]])
    probs = np.array([[0.9, 0.2], [0.6, 0.1], [0.5, 0.7], [0.2, 0.3]])
    # Label 0: 0.9 yes ok, 0.6 yes wrong, 0.5 is "no" (wrong), 0.2 ok -> 2/4.
    # Label 1: ok, ok, ok, 0.3 wrong -> 3/4.
    assert accuracy_multilabel(y, probs) == pytest.approx((0.5 + 0.75) / 2)


def test_multilabel_ece_is_the_mean_of_each_labels_binary_ece() -> None:
    from radlens.evaluation.metrics import ece_binary, ece_multilabel

    # A binary label at p = 0.9 that is right half the time: gap 0.4, as a binary model.
    y = np.array([1] * 5 + [0] * 5)
    assert ece_binary(y, np.full(10, 0.9)) == pytest.approx(0.4)
    assert ece_binary(y, np.full(10, 0.9)) == ece(y, np.array([[0.1, 0.9]] * 10))
    # Second label: p = 0.2 ("no" with confidence 0.8) and 8 of 10 are 0 -> calibrated.
    y2 = np.array([0] * 8 + [1] * 2)
    probs = np.stack([np.full(10, 0.9), np.full(10, 0.2)], axis=1)
    assert ece_multilabel(np.stack([y, y2], axis=1), probs) == pytest.approx((0.4 + 0.0) / 2)


def test_multilabel_nll_is_the_mean_binary_cross_entropy() -> None:
    from radlens.evaluation.metrics import nll_multilabel

    y = np.array([[1, 0], [0, 1]])
    probs = np.array([[0.8, 0.3], [0.4, 1.0]])
    expected = -(math.log(0.8) + math.log(0.7) + math.log(0.6) + math.log(1 - 1e-12)) / 4
    assert nll_multilabel(y, probs) == pytest.approx(expected)


def test_fit_temperature_multilabel_recovers_a_shared_temperature() -> None:
    from radlens.evaluation.metrics import fit_temperature_multilabel, sigmoid

    rng = np.random.default_rng(0)
    calibrated = rng.normal(0, 2.0, size=(5000, 4))
    y = (rng.random(calibrated.shape) < sigmoid(calibrated)).astype(int)
    assert fit_temperature_multilabel(calibrated * 2.5, y) == pytest.approx(2.5, rel=0.06)
    assert fit_temperature_multilabel(calibrated, y) == pytest.approx(1.0, rel=0.06)


def test_abstain_band_is_the_narrowest_that_reaches_the_target() -> None:
    from radlens.evaluation.metrics import abstain_band

    y = np.array([0] * 8 + [1] * 8)
    p = np.array(
        [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.48, 0.55, 0.45, 0.52, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    )
    low, high = abstain_band(y, p, 0.5, target_accuracy=1.0, max_abstain=0.3)
    # The four calls within 0.05 of 0.5 include the two wrong ones; outside, all are right.
    assert (round(low, 2), round(high, 2)) == (0.45, 0.55)
    # Already accurate enough: no band.
    assert abstain_band(y, p, 0.5, target_accuracy=0.85) == (0.5, 0.5)
    # The cap wins over the target.
    low, high = abstain_band(y, p, 0.5, target_accuracy=1.0, max_abstain=0.1)
    assert np.mean((p >= low) & (p <= high)) <= 0.1
