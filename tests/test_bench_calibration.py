"""benchmarks/bench_calibration.py: whether a card's calibration is current."""

from __future__ import annotations

from dataclasses import replace

from bench_helpers import load_benchmark
from radlens.models.card import Calibration, CalibrationMethod

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
