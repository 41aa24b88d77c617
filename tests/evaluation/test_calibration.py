"""Calibration methods on synthetic logits whose miscalibration is known, the out-of-fold
choice between them, the ECE noise floor, and the card they produce."""

from __future__ import annotations

import numpy as np
import pytest

from radlens.evaluation import metrics as m
from radlens.evaluation.calibration import (
    CrossFittedLogits,
    calibrate,
    calibrate_card,
    candidate_methods,
    choose_method,
    cross_validated,
    describe,
    ece_noise_floor,
    fit_method,
    fit_platt,
    fit_vector_scaling,
    nll_gain,
    stratified_folds,
    thresholds_for,
)
from radlens.evaluation.evaluate import summarize
from radlens.models.card import Calibration, CalibrationMethod, CrossFitted, Task


def binary_logits(
    n: int, temperature: float, bias: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose true ``p1`` is ``sigmoid((z1 - z0) / temperature + bias)``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, size=(n, 2))
    p1 = m.sigmoid((z[:, 1] - z[:, 0]) / temperature + bias)
    return z, (rng.random(n) < p1).astype(np.int64)


def multiclass_logits(
    n: int, temperatures: np.ndarray, biases: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose true probabilities are ``softmax(z / temperatures + biases)``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, size=(n, len(temperatures)))
    p = m.softmax(z / temperatures + biases)
    y = (rng.random((n, 1)) > np.cumsum(p, axis=1)[:, :-1]).sum(axis=1)
    return z, y


def test_platt_recovers_a_known_temperature_and_bias() -> None:
    logits, y = binary_logits(20000, temperature=1.5, bias=1.0)
    temperature, bias = fit_platt(logits, y)
    assert temperature == pytest.approx(1.5, rel=0.05)
    assert bias == pytest.approx(1.0, abs=0.07)
    # Temperature scaling alone cannot remove the bias.
    assert m.fit_temperature(logits, y) != pytest.approx(1.5, rel=0.05)


def test_platt_stays_finite_on_separable_data() -> None:
    logits = np.array([[0.0, -2.0], [0.0, -1.0], [0.0, 1.0], [0.0, 2.0]])
    temperature, bias = fit_platt(logits, np.array([0, 0, 1, 1]))
    assert np.isfinite([temperature, bias]).all() and temperature > 0


def test_vector_scaling_recovers_per_class_temperatures() -> None:
    true_t, true_b = np.array([1.0, 2.0, 0.5, 1.5]), np.array([0.5, -0.5, 0.0, 0.3])
    logits, y = multiclass_logits(20000, true_t, true_b)
    temperatures, biases = fit_vector_scaling(logits, y)
    np.testing.assert_allclose(temperatures, true_t, rtol=0.06)
    # Softmax ignores a shift common to every class: compare the biases up to one.
    np.testing.assert_allclose(biases - biases.mean(), true_b - true_b.mean(), atol=0.1)


def test_cross_validation_keeps_temperature_when_a_bias_does_not_help() -> None:
    logits, y = binary_logits(500, temperature=2.0, bias=0.0, seed=1)
    calibration, _ = calibrate(Task.BINARY, logits, y)
    assert calibration.method is CalibrationMethod.TEMPERATURE
    assert calibration.temperature == pytest.approx(2.0, rel=0.15)
    assert calibration.biases == ()
    # Platt's out-of-fold NLL is a hair lower here (the sample has a small bias by chance),
    # but by less than one standard error: not a win.
    gain, error = nll_gain(Task.BINARY, y, cross_validated(Task.BINARY, logits, y), "platt")
    assert 0 < gain < error
    assert calibration.cv_nll["platt"] == pytest.approx(calibration.cv_nll["temperature"], abs=0.01)


def test_choose_method_needs_a_gain_of_more_than_one_standard_error() -> None:
    y = np.array([0, 1, 0, 1])
    flat = np.full((4, 2), 0.5)
    better = np.array([[0.6, 0.4], [0.4, 0.6], [0.6, 0.4], [0.4, 0.6]])
    mixed = np.array([[0.6, 0.4], [0.4, 0.6], [0.4, 0.6], [0.6, 0.4]])
    temperature, platt = CalibrationMethod.TEMPERATURE, CalibrationMethod.PLATT
    assert choose_method(Task.BINARY, y, {temperature: flat, platt: better}) is platt
    # As good on average (two items better, two worse): not a win.
    assert choose_method(Task.BINARY, y, {temperature: flat, platt: mixed}) is temperature
    assert choose_method(Task.BINARY, y, {temperature: better, platt: flat}) is temperature


def test_cross_validation_chooses_platt_when_the_bias_is_real() -> None:
    logits, y = binary_logits(500, temperature=1.0, bias=1.5, seed=2)
    calibration, probs = calibrate(Task.BINARY, logits, y)
    assert calibration.method is CalibrationMethod.PLATT
    assert calibration.cv_nll["platt"] < calibration.cv_nll["temperature"]
    assert calibration.biases[0] == 0.0 and calibration.biases[1] == pytest.approx(1.5, abs=0.4)
    np.testing.assert_array_equal(probs, calibration.probabilities(logits, Task.BINARY))


def test_cross_validation_chooses_vector_scaling_only_when_it_wins_out_of_fold() -> None:
    skewed = multiclass_logits(600, np.array([0.5, 2.0, 1.0]), np.array([1.0, -1.0, 0.0]))
    plain = multiclass_logits(600, np.array([1.5, 1.5, 1.5]), np.zeros(3), seed=3)
    vector, _ = calibrate(Task.MULTICLASS, *skewed)
    temperature, _ = calibrate(Task.ORDINAL, *plain)
    assert vector.method is CalibrationMethod.VECTOR and len(vector.class_temperatures) == 3
    assert temperature.method is CalibrationMethod.TEMPERATURE
    assert set(temperature.cv_nll) == {"temperature", "vector"}


def test_calibrate_reports_in_sample_out_of_fold_and_noise_floor_ece() -> None:
    logits, y = binary_logits(300, temperature=0.5, bias=0.0, seed=4)
    calibration, probs = calibrate(Task.BINARY, logits, y)
    assert calibration.ece_before == pytest.approx(m.ece(y, m.softmax(logits)), abs=1e-6)
    assert calibration.ece_after == pytest.approx(m.ece(y, probs), abs=1e-6)
    out_of_fold = cross_validated(Task.BINARY, logits, y)[calibration.method]
    assert calibration.ece_cv == pytest.approx(m.ece(y, out_of_fold), abs=1e-6)
    assert calibration.ece_after is not None and calibration.ece_before is not None
    assert calibration.ece_after < calibration.ece_before
    assert calibration.ece_noise_mean is not None and calibration.ece_noise_p95 is not None
    assert 0 < calibration.ece_noise_mean < calibration.ece_noise_p95 < 0.2


def test_calibrate_pools_cross_fitted_items_with_val_and_returns_val_probabilities() -> None:
    """A small val (true temperature 0.8) is outweighed by many cross-fitted items (true
    temperature 2); the figures are the pool's, the probabilities val's."""
    z_val, y_val = binary_logits(40, 0.8, 0.0, seed=5)
    z_pool, y_pool = binary_logits(3000, 2.0, 0.0, seed=6)
    record = CrossFitted("cross_fitted.npz", "0" * 64, 3000)
    alone, _ = calibrate(Task.BINARY, z_val, y_val)
    pooled, probs = calibrate(
        Task.BINARY, z_val, y_val, cross_fitted=CrossFittedLogits(z_pool, y_pool, record)
    )
    assert pooled.temperature == pytest.approx(2.0, abs=0.2)
    assert abs(alone.temperature - 2.0) > 0.4  # val alone: the val-sized error
    assert pooled.cross_fitted == record and alone.cross_fitted is None
    assert probs.shape == (40, 2)
    np.testing.assert_allclose(probs, pooled.probabilities(z_val, Task.BINARY))
    assert pooled.ece_noise_p95 is not None and alone.ece_noise_p95 is not None
    assert pooled.ece_noise_p95 < alone.ece_noise_p95 / 3  # measured on 3040 items, not 40


def test_calibrate_can_choose_the_method_on_the_pool_and_fit_it_on_val_alone() -> None:
    """A bias of 0.4 logits: val's 120 items cannot show it past one standard error, val
    pooled with 3000 cross-fitted items can; Platt scaling is then fitted on val alone."""
    z_val, y_val = binary_logits(120, 1.0, 0.4, seed=7)
    z_pool, y_pool = binary_logits(3000, 1.0, 0.4, seed=8)
    record = CrossFitted("cross_fitted.npz", "0" * 64, 3000, use="choose")
    alone, _ = calibrate(Task.BINARY, z_val, y_val)
    chosen, probs = calibrate(
        Task.BINARY, z_val, y_val, cross_fitted=CrossFittedLogits(z_pool, y_pool, record)
    )
    assert alone.method is CalibrationMethod.TEMPERATURE
    assert chosen.method is CalibrationMethod.PLATT and chosen.cross_fitted == record
    on_val = fit_method(CalibrationMethod.PLATT, Task.BINARY, z_val, y_val)
    assert (chosen.temperature, chosen.biases) == (on_val.temperature, on_val.biases)
    np.testing.assert_allclose(probs, on_val.probabilities(z_val, Task.BINARY))
    assert chosen.ece_after == pytest.approx(m.ece(y_val, probs), abs=1e-6)  # val's figures
    y_all = np.concatenate([y_val, y_pool])
    pooled = cross_validated(Task.BINARY, np.concatenate([z_val, z_pool]), y_all)
    assert chosen.cv_nll["platt"] == pytest.approx(
        m.nll(y_all, pooled[CalibrationMethod.PLATT]), abs=1e-6
    )  # the pool's, which chose


def test_a_cross_fitted_record_names_how_the_pool_was_used() -> None:
    assert CrossFitted("cross_fitted.npz", "0" * 64, 3).fitted_on_pool
    assert not CrossFitted("cross_fitted.npz", "0" * 64, 3, use="choose").fitted_on_pool
    with pytest.raises(ValueError, match="use must be one of fit, choose"):
        CrossFitted("cross_fitted.npz", "0" * 64, 3, use="both")


def test_cross_fitted_logits_must_match_their_record() -> None:
    record = CrossFitted("cross_fitted.npz", "0" * 64, 3)
    with pytest.raises(ValueError, match="the record says 3"):
        CrossFittedLogits(np.zeros((2, 2)), np.zeros(2, np.int64), record)
    with pytest.raises(ValueError, match="one label per row"):
        CrossFittedLogits(np.zeros((3, 2)), np.zeros(2, np.int64), record)


def test_calibrate_is_deterministic_for_a_seed() -> None:
    logits, y = binary_logits(200, temperature=1.2, bias=0.5, seed=5)
    assert calibrate(Task.BINARY, logits, y)[0] == calibrate(Task.BINARY, logits, y)[0]


def test_multilabel_keeps_one_shared_temperature() -> None:
    assert candidate_methods(Task.MULTILABEL) == (CalibrationMethod.TEMPERATURE,)
    rng = np.random.default_rng(6)
    logits = rng.normal(0, 2.0, (400, 3))
    y = (rng.random(logits.shape) < m.sigmoid(logits)).astype(int)
    calibration, probs = calibrate(Task.MULTILABEL, logits * 2, y)
    assert calibration.method is CalibrationMethod.TEMPERATURE
    assert set(calibration.cv_nll) == {"temperature"}
    np.testing.assert_allclose(probs, m.sigmoid(logits * 2, calibration.temperature))
    assert calibration.ece_cv is not None and calibration.ece_noise_p95 is not None


def test_fit_method_refuses_a_method_the_task_cannot_use() -> None:
    logits, y = binary_logits(50, 1.0, 0.0)
    with pytest.raises(ValueError, match="vector"):
        fit_method(CalibrationMethod.VECTOR, Task.BINARY, logits, y)


def test_stratified_folds_deal_each_class_evenly() -> None:
    y = np.array([0] * 23 + [1] * 7)
    fold = stratified_folds(y, folds=5, seed=0)
    for cls in (0, 1):
        counts = np.bincount(fold[y == cls], minlength=5)
        assert counts.max() - counts.min() <= 1
    assert np.bincount(fold).max() - np.bincount(fold).min() <= 1
    assert not np.array_equal(fold, stratified_folds(y, folds=5, seed=1))


def test_noise_floor_is_the_ece_of_labels_drawn_from_the_probabilities() -> None:
    rng = np.random.default_rng(7)
    probs = m.softmax(rng.normal(0, 2.0, (150, 3)))
    mean, p95 = ece_noise_floor(Task.MULTICLASS, probs, draws=1000, seed=0)
    direct = []
    for _ in range(1000):
        labels = (rng.random((150, 1)) > np.cumsum(probs, axis=1)[:, :-1]).sum(axis=1)
        direct.append(m.ece(labels, probs))
    assert mean == pytest.approx(np.mean(direct), rel=0.05)
    assert p95 == pytest.approx(np.quantile(direct, 0.95), rel=0.1)
    # More items, less noise.
    big = m.softmax(rng.normal(0, 2.0, (1500, 3)))
    assert ece_noise_floor(Task.MULTICLASS, big, draws=300)[0] < mean / 2


def test_multilabel_noise_floor_matches_the_mean_binary_ece() -> None:
    rng = np.random.default_rng(8)
    probs = m.sigmoid(rng.normal(0, 2.0, (100, 2)))
    mean, _ = ece_noise_floor(Task.MULTILABEL, probs, draws=1000, seed=0)
    direct = [
        m.ece_multilabel((rng.random(probs.shape) < probs).astype(int), probs) for _ in range(1000)
    ]
    assert mean == pytest.approx(np.mean(direct), rel=0.05)


def test_calibrate_card_refits_thresholds_on_the_new_probabilities(make_card) -> None:  # type: ignore[no-untyped-def]
    logits, y = binary_logits(300, temperature=1.0, bias=1.5, seed=9)
    card, evaluation = calibrate_card(make_card(), logits, y, high_sensitivity=0.9)
    probs = card.calibration.probabilities(logits, card.task)
    assert card.calibration.method is CalibrationMethod.PLATT
    assert card.thresholds == thresholds_for(Task.BINARY, y, probs, 0.9, 1, card.labels)
    expected = summarize(card, logits, y, "val").metrics
    assert card.metrics["val"] == {k: round(v, 6) for k, v in expected.items()} | {"n": 300}
    np.testing.assert_array_equal(evaluation.probs, probs)


def test_describe_names_the_method_and_its_parameters() -> None:
    assert describe(Calibration(temperature=1.5)) == "temperature: T 1.5"
    vector = Calibration(CalibrationMethod.VECTOR, 1.0, (1.0, 2.0), (0.5, -0.5))
    assert describe(vector) == "vector: T (1, 2), bias (0.5, -0.5)"


def test_stored_thresholds_keep_what_they_promise_on_val() -> None:
    rng = np.random.default_rng(10)
    y = (rng.random(200) < 0.4).astype(np.int64)
    probs = m.softmax(np.stack([np.zeros(200), rng.normal(y * 1.5, 1.0)], axis=1))
    got = thresholds_for(Task.BINARY, y, probs, 0.95, 1)
    rates = m.binary_rates(y == 1, probs[:, 1], got["high_sensitivity"])
    assert rates["sensitivity"] >= 0.95
    youden = m.youden_threshold(y == 1, probs[:, 1])
    assert youden - 1e-6 <= got["operating"] <= youden
    assert got["abstain_low"] <= got["operating"] <= got["abstain_high"]


def test_a_zero_width_abstain_band_stays_zero_width() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.2, 0.3, 0.7123456789, 0.8, 0.9])
    got = thresholds_for(Task.BINARY, y, np.stack([1 - p1, p1], axis=1), 0.95, 1)
    assert got["abstain_low"] == got["abstain_high"] == got["operating"] == 0.712345
