"""Drift of OOD scores against the card's training-set quantiles: the bins the card defines,
streams drawn from them (no alert) or shifted (alert), and a real model's OOD scores on
clean versus corrupted images."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from radlens.evaluation.corruptions import corrupt
from radlens.evaluation.evaluate import prepare_batch
from radlens.feedback.drift import (
    OodSample,
    ReferenceBins,
    bin_test,
    drift,
    reference_bins,
    upper_regularized_gamma,
)
from radlens.inference.backends import OnnxBackend
from radlens.inference.ood import read_ood, stats_for
from radlens.io.datasets import read_labelled
from radlens.models.card import InputOodSpec, InputStatsSpec, OodSpec
from radlens.models.registry import InstalledModel, discover

SPEC = OodSpec(
    "mahalanobis",
    "ood.npz",
    "0" * 64,
    threshold=12.0,
    val_flag_rate=0.05,
    inputs=InputStatsSpec(
        "image2d/1",
        "ood_inputs.npz",
        "1" * 64,
        feature_median=8.0,
        input_median=4.0,
        feature_threshold=16.0,
        input_threshold=9.0,
        product_threshold=2.0,
        guard_quantile=0.99,
        val_flag_rate=0.05,
    ),
)


def _draw(bins: ReferenceBins, n: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """``n`` values distributed as the bins say (uniform inside each bin), times ``scale``."""
    edges = np.array([0.0, *bins.edges, bins.edges[-1] * 2])
    which = rng.choice(len(bins.expected), size=n, p=np.array(bins.expected))
    values = rng.uniform(edges[which], edges[which + 1])
    return np.asarray(values * scale, np.float64)


def _stream(n: int, seed: int, scale: float = 1.0) -> list[OodSample]:
    rng = np.random.default_rng(seed)
    by_name = {b.statistic: _draw(b, n, rng, scale) for b in reference_bins(SPEC)}
    return [
        OodSample(float(d), float(f), float(i))
        for d, f, i in zip(by_name["decision"], by_name["feature"], by_name["input"], strict=True)
    ]


def test_the_card_quantiles_define_the_reference_bins() -> None:
    feature, inputs, decision = reference_bins(SPEC)
    assert feature.edges == (8.0, 12.0, 16.0)
    assert feature.expected == pytest.approx((0.5, 0.45, 0.04, 0.01))
    assert inputs.edges == (4.0, 9.0) and inputs.expected == pytest.approx((0.5, 0.49, 0.01))
    assert decision.edges == (1.0,) and decision.expected == pytest.approx((0.95, 0.05))
    no_inputs = OodSpec("mahalanobis", "ood.npz", "0" * 64, threshold=12.0, val_flag_rate=0.05)
    assert [b.statistic for b in reference_bins(no_inputs)] == ["decision"]
    never_flags = OodSpec("mahalanobis", "ood.npz", "0" * 64, threshold=12.0, val_flag_rate=0.0)
    assert reference_bins(never_flags) == ()


def test_guards_at_the_largest_val_score_leave_no_tail_bin() -> None:
    assert SPEC.inputs is not None
    at_max = replace(SPEC, inputs=replace(SPEC.inputs, guard_quantile=1.0))
    feature, inputs, decision = reference_bins(at_max)
    assert feature.edges == (8.0, 12.0) and feature.expected == pytest.approx((0.5, 0.45, 0.05))
    assert inputs.edges == (4.0,) and inputs.expected == pytest.approx((0.5, 0.5))
    assert decision.expected == pytest.approx((0.95, 0.05))
    rng = np.random.default_rng(0)
    far = [OodSample(2.0, float(f), 3.0) for f in rng.uniform(12.0, 30.0, 60)]
    assert drift(far, at_max).alert


def test_streams_like_the_training_set_raise_no_alert() -> None:
    alerts = [drift(_stream(300, seed), SPEC).alert for seed in range(20)]
    assert not any(alerts)
    result = drift(_stream(300, 0), SPEC)
    assert len(result.tests) == 3 and result.psi is not None and result.psi < 0.05
    assert result.reason.startswith("no drift")


def test_a_shifted_stream_raises_an_alert_naming_the_statistic() -> None:
    result = drift(_stream(300, 1, scale=1.6), SPEC)
    assert result.alert and result.reason.startswith("drift: ")
    worst = max(result.tests, key=lambda t: t.psi)
    assert worst.psi >= 0.2 and worst.p_value < 1e-6 and worst.shift > 0


def test_scores_lower_than_the_reference_are_not_an_alert() -> None:
    result = drift(_stream(300, 2, scale=0.4), SPEC)
    assert not result.alert and "lower than the reference" in result.reason


def test_too_few_images_or_no_card_statistics_are_not_judged() -> None:
    shifted = _stream(300, 3, scale=3.0)
    assert not drift(shifted[:29], SPEC).alert
    assert "judged from 30" in drift(shifted[:29], SPEC).reason
    assert not drift(shifted, None).alert
    assert drift(shifted[:40], SPEC, min_images=20).alert


def test_bin_test_counts_values_on_an_edge_in_the_upper_bin() -> None:
    bins = ReferenceBins("decision", (1.0,), (0.5, 0.5))
    test = bin_test(np.array([0.2, 1.0, 1.0, 3.0]), bins)
    assert test.observed == (1, 3) and test.n == 4
    with pytest.raises(ValueError, match="ascend"):
        ReferenceBins("x", (2.0, 1.0), (0.2, 0.3, 0.5))


def _breast_model() -> InstalledModel:
    [model] = [m for m in discover(include_disabled=True) if m.card.name == "breast_us_malignancy"]
    return model


def _samples(model: InstalledModel, images: list[np.ndarray]) -> list[OodSample]:
    card = model.card
    assert card.ood is not None
    stats = stats_for(model.folder, card.ood)
    batch = prepare_batch(card, images)
    features = OnnxBackend(model.weights, threads=1).run(batch)[card.ood.output]
    readings = read_ood(card, stats, features, images, batch)
    return [OodSample(r.score, r.feature, r.inputs) for r in readings]


@pytest.mark.shared_data
@pytest.mark.parametrize(("kind", "severity"), [("blur", 3), ("jpeg", 3), ("gaussian_noise", 3)])
def test_a_real_model_sees_corrupted_images_drift_and_clean_ones_not(
    shared_data_dir: Path, kind: str, severity: int
) -> None:
    """BreastMNIST val (78 images the model was not trained on; its OOD thresholds were
    fitted on them) through the shipped model, clean and corrupted."""
    model = _breast_model()
    val = read_labelled(shared_data_dir / "medmnist/breastmnist.npz", "val", model.card.labels)
    clean = drift(_samples(model, val.images), model.card.ood)
    assert not clean.alert, clean.reason
    corrupted = [
        np.round(corrupt(image, kind, severity, seed=i)).astype(np.uint8)
        for i, image in enumerate(val.images)
    ]
    shifted = drift(_samples(model, corrupted), model.card.ood)
    assert shifted.alert, shifted.reason


def test_upper_regularized_gamma_matches_scipy_and_closed_forms() -> None:
    from scipy.special import gammaincc

    for a in (0.5, 1.0, 1.5, 4.5, 7.0, 12.5, 50.0):
        for x in (1e-9, 0.1, 0.5 * a, a, a + 1, 2 * a + 3, 80.0, 400.0):
            expected = float(gammaincc(a, x))
            assert upper_regularized_gamma(a, x) == pytest.approx(expected, rel=1e-12, abs=1e-300)
    # Closed form for a = 1: Q(1, x) = exp(-x); the chi-square(2) 5% point is 5.991.
    assert upper_regularized_gamma(1.0, 3.0) == pytest.approx(np.exp(-3.0), rel=1e-14)
    assert upper_regularized_gamma(1.0, 5.991464547107979 / 2) == pytest.approx(0.05, rel=1e-9)
    assert upper_regularized_gamma(2.0, 0.0) == 1.0
    with pytest.raises(ValueError):
        upper_regularized_gamma(0.0, 1.0)


INPUT_ONLY = InputOodSpec("image2d/2", "ood_inputs.npz", "2" * 64, 6.0, 3.0, 0.05)


def test_a_segmenter_or_detector_is_judged_on_its_input_distance() -> None:
    [inputs] = reference_bins(INPUT_ONLY)
    assert inputs.statistic == "input" and inputs.edges == (3.0, 6.0)
    assert inputs.expected == pytest.approx((0.5, 0.45, 0.05))

    def stream(seed: int, scale: float = 1.0) -> list[OodSample]:
        values = _draw(inputs, 300, np.random.default_rng(seed), scale)
        return [OodSample(float(v) / INPUT_ONLY.threshold, None, float(v)) for v in values]

    assert not any(drift(stream(seed), INPUT_ONLY).alert for seed in range(20))
    shifted = drift(stream(1, scale=1.8), INPUT_ONLY)
    assert shifted.alert and "input" in shifted.reason
