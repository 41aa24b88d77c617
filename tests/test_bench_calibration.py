"""benchmarks/bench_calibration.py: whether a card's calibration is current."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from bench_helpers import load_benchmark
from radlens.evaluation.metrics import softmax
from radlens.models.card import Calibration, CalibrationMethod, Task

bench = load_benchmark("bench_calibration")


def test_a_card_is_current_when_a_refit_differs_only_in_the_last_bits() -> None:
    card = Calibration(
        method=CalibrationMethod.VECTOR,
        class_temperatures=(0.9, 1.1),
        biases=(0.0, 0.2),
        ece_noise_mean=0.057059,
        cv_nll={"temperature": 0.39, "vector": 0.38},
    )
    drift = replace(
        card,
        class_temperatures=(0.9 + 1e-7, 1.1),
        ece_noise_mean=0.057061,
        cv_nll={"temperature": 0.39, "vector": 0.38 - 1e-6},
    )
    assert bench.same_calibration(card, drift)
    moved = replace(card, class_temperatures=(0.92, 1.1))
    assert not bench.same_calibration(card, moved)
    platt = Calibration(method=CalibrationMethod.PLATT, biases=(0.0, 0.0))
    assert not bench.same_calibration(platt, Calibration())  # temperature 1, no bias


def test_a_row_carries_the_debiased_cv_ece_and_the_goal_may_rest_on_it() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, (150, 2))
    y = (rng.random(150) < softmax(logits)[:, 1]).astype(int)  # calibrated at T = 1
    row = bench.measure("toy", Task.BINARY, logits, y)
    low, high = row["ece_cv_debiased_ci95"]
    assert low <= row["ece_cv_debiased"] <= high
    assert row["ece_cv_debiased"] < row["ece_cv"]  # the plug-in's bias taken off
    above = {"goal_met": False, "within_noise_floor": True, "ece_cv": 0.05}
    debiased = {"ece_cv_debiased": 0.02, "ece_cv_debiased_ci95": [0.005, 0.04]}
    assert bench._goal(above | debiased) == "met by the debiased ECE"
    shown = debiased | {"ece_cv_debiased_ci95": [0.005, 0.028]}
    assert bench._goal(above | shown) == "met by the debiased ECE, shown"
    assert bench._goal(above | debiased | {"ece_cv_debiased": 0.031}) == (
        "not met; within the noise floor"
    )
    assert bench._goal(above) == "not met; within the noise floor"  # an older row


def test_a_card_that_chose_its_method_on_cross_fitted_items_reads_val_figures() -> None:
    from radlens.evaluation.calibration import CrossFittedLogits, calibrate
    from radlens.models.card import CrossFitted

    rng = np.random.default_rng(1)

    def items(n: int) -> tuple[np.ndarray, np.ndarray]:
        logits = rng.normal(0.0, 2.0, (n, 2))
        return logits, (rng.random(n) < softmax(logits)[:, 1]).astype(int)

    (val_logits, y), (pool_logits, pool_y) = items(120), items(900)
    record = CrossFitted("cross_fitted.npz", "0" * 64, 900, use="choose")
    row = bench.measure(
        "toy", Task.BINARY, val_logits, y, CrossFittedLogits(pool_logits, pool_y, record)
    )
    assert row["n_cross_fitted"] == 900 and row["cross_fitted_use"] == "choose"
    on_val, _ = calibrate(
        Task.BINARY, val_logits, y, cross_fitted=CrossFittedLogits(pool_logits, pool_y, record)
    )
    assert row["ece_after"] == on_val.ece_after and row["ece_val"] == on_val.ece_after
    assert bench._calibrated_on(row) == "val (method chosen on val + 900 cross-fitted)"
    assert bench._calibrated_on(row | {"cross_fitted_use": "fit"}) == "val + 900 cross-fitted"
    assert bench._calibrated_on({"n_cross_fitted": 0}) == "val"
