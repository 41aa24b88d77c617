"""``evaluate`` and ``summarize``: a card + a backend over labelled images -> metrics."""

from __future__ import annotations

import numpy as np
import pytest

from radlens.errors import IncompatibleInputError
from radlens.evaluation.evaluate import evaluate, predict_logits, summarize
from radlens.inference.backends import FakeBackend
from radlens.io.datasets import LabelledImages
from radlens.models.card import Calibration, InputSpec


def toy_data(n_per_class: int = 6, seed: int = 0) -> LabelledImages:
    """Class 1 images are mostly bright, class 0 mostly dark."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, bright_fraction in ((0, 0.2), (1, 0.8)):
        for _ in range(n_per_class):
            image = (rng.random((40, 40)) < bright_fraction).astype(np.uint8) * 200 + 20
            images.append(image.astype(np.uint8))
            labels.append(label)
    ids = tuple(f"val[{i}]" for i in range(len(images)))
    return LabelledImages(images, np.array(labels), ("NORMAL", "PNEUMONIA"), ids, "toy", "val")


def mean_backend() -> FakeBackend:
    """Like the tiny ONNX model: the class-1 logit is the mean of the input."""

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        m = batch.mean(axis=(1, 2, 3))
        return {"logits": np.stack([-m, m], axis=1)}

    return FakeBackend(run)


def test_evaluate_separates_bright_from_dark(make_card) -> None:  # type: ignore[no-untyped-def]
    card = make_card(input=InputSpec(size=(32, 32)))
    result = evaluate(card, mean_backend(), toy_data())
    assert (result.model, result.version, result.split, result.n) == (
        "tiny_cxr",
        "0.0.1",
        "val",
        12,
    )
    assert result.metrics["auc"] == 1.0
    assert result.metrics["acc"] == 1.0
    assert result.metrics["sensitivity_at_operating"] == 1.0
    assert result.per_class["NORMAL"]["n"] == 6
    assert result.per_class["PNEUMONIA"]["recall"] == 1.0
    assert result.probs.shape == (12, 2)


def test_predict_logits_batches_without_changing_results(make_card) -> None:  # type: ignore[no-untyped-def]
    card = make_card(input=InputSpec(size=(32, 32)))
    data = toy_data()
    np.testing.assert_allclose(
        predict_logits(card, mean_backend(), data, batch_size=5),
        predict_logits(card, mean_backend(), data, batch_size=64),
    )


def test_summarize_reports_ece_before_and_after_temperature(make_card) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 1, (200, 2)) * 4
    y = (rng.random(200) < 0.5).astype(int)
    card = make_card(calibration=Calibration(temperature=3.0))
    result = summarize(card, logits, y, "test")
    assert result.metrics["ece"] != result.metrics["ece_uncalibrated"]
    np.testing.assert_allclose(result.probs.sum(axis=1), 1.0)
    assert set(result.metrics) >= {"auc", "acc", "ece", "ece_uncalibrated", "nll"}


def test_data_with_other_classes_is_incompatible(make_card) -> None:  # type: ignore[no-untyped-def]
    data = toy_data()
    three = LabelledImages(data.images, data.labels, ("A", "B", "C"), data.ids, "toy", "val")
    with pytest.raises(IncompatibleInputError, match="has classes"):
        evaluate(make_card(), mean_backend(), three)
