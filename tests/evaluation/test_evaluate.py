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


def test_data_with_the_classes_in_another_order_is_incompatible(make_card) -> None:  # type: ignore[no-untyped-def]
    # A folder's classes come sorted by name; FracAtlas's ("fracture", "no fracture") against
    # the card's ("no fracture", "fracture") scored val AUC 0.097 instead of 0.903.
    data = toy_data()
    swapped = LabelledImages(
        data.images, 1 - data.labels, ("PNEUMONIA", "NORMAL"), data.ids, "toy", "val"
    )
    with pytest.raises(IncompatibleInputError, match="in another order"):
        evaluate(make_card(), mean_backend(), swapped)
    numbered = LabelledImages(data.images, data.labels, ("0", "1"), data.ids, "toy", "val")
    assert evaluate(make_card(), mean_backend(), numbered).metrics["auc"] == 1.0


# --- multi-label ---------------------------------------------------------------------------

LABELS = ("Effusion", "Nodule", "Mass")


def multilabel_card(make_card, temperature: float = 1.0):  # type: ignore[no-untyped-def]
    return make_card(
        task="multilabel",
        labels=LABELS,
        input=InputSpec(size=(32, 32)),
        calibration=Calibration(temperature=temperature),
        thresholds={"operating": 0.5},
    )


def test_summarize_multilabel_uses_sigmoid_with_the_card_temperature(make_card) -> None:  # type: ignore[no-untyped-def]
    from radlens.evaluation import metrics as m

    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, (300, 3))
    y = (rng.random((300, 3)) < m.sigmoid(logits / 3)).astype(np.int64)
    result = summarize(multilabel_card(make_card, 3.0), logits, y, "val")
    np.testing.assert_allclose(result.probs, m.sigmoid(logits, 3.0))
    assert set(result.metrics) == {"auc", "acc", "ece", "ece_uncalibrated", "nll"}
    assert result.metrics["auc"] == m.auc_multilabel(y, result.probs)
    assert result.metrics["acc"] == m.accuracy_multilabel(y, result.probs)
    assert result.metrics["nll"] == m.nll_multilabel(y, result.probs)
    # The logits are three times too confident: calibration at T = 3 lowers the ECE.
    assert result.metrics["ece"] < result.metrics["ece_uncalibrated"]
    assert result.metrics["ece_uncalibrated"] == m.ece_multilabel(y, m.sigmoid(logits))
    assert list(result.per_class) == list(LABELS)
    nodule = result.per_class["Nodule"]
    assert nodule["n"] == y[:, 1].sum()
    assert nodule["auc"] == m.auc_binary(y[:, 1], result.probs[:, 1])
    rates = m.binary_rates(y[:, 1], result.probs[:, 1], 0.5)
    assert (nodule["sensitivity"], nodule["specificity"]) == (
        rates["sensitivity"],
        rates["specificity"],
    )


def test_multilabel_per_label_rates_use_the_operating_threshold(make_card) -> None:  # type: ignore[no-untyped-def]
    logits = np.array([[2.0, 0.0], [0.5, 0.0], [-2.0, 0.0]])  # p = 0.88, 0.62, 0.12
    y = np.array([[1, 0], [1, 1], [0, 1]])
    card = make_card(task="multilabel", labels=("A", "B"), thresholds={"operating": 0.7})
    result = summarize(card, logits, y, "val")
    assert result.per_class["A"] == {"n": 2.0, "auc": 1.0, "sensitivity": 0.5, "specificity": 1.0}
    # B: every p is 0.5, which reads "no" for ACC (> 0.5) and is below 0.7.
    assert result.per_class["B"]["sensitivity"] == 0.0
    # ACC is at 0.5, not at the operating threshold: A all right, B 1 of 3 right.
    assert result.metrics["acc"] == pytest.approx((1 + 1 / 3) / 2)


def multilabel_data() -> LabelledImages:
    """Label k is present when the k-th horizontal band is bright."""
    rng = np.random.default_rng(3)
    combos = np.array([[(i >> k) & 1 for k in range(3)] for i in range(8)] * 2)
    images = []
    for row in combos:
        image = rng.integers(0, 30, (32, 32))
        for k in range(3):
            image[k * 10 : k * 10 + 10] += 200 * row[k]
        images.append(image.astype(np.uint8))
    ids = tuple(f"val[{i}]" for i in range(len(images)))
    return LabelledImages(images, combos, LABELS, ids, "bands.npz", "val")


def band_backend() -> FakeBackend:
    """Logit k is the centred mean brightness of band k."""

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        bands = [batch[:, 0, k * 10 : k * 10 + 10].mean(axis=(1, 2)) for k in range(3)]
        return {"logits": np.stack(bands, axis=1) - 1.0}

    return FakeBackend(run)


def test_evaluate_a_multilabel_model_on_multilabel_data(make_card) -> None:  # type: ignore[no-untyped-def]
    result = evaluate(multilabel_card(make_card), band_backend(), multilabel_data())
    assert result.n == 16 and result.probs.shape == (16, 3)
    assert result.metrics["auc"] == 1.0
    assert result.per_class["Mass"]["n"] == 8
    assert result.labels.shape == (16, 3)


def test_multilabel_data_needs_a_multilabel_model_with_as_many_labels(make_card) -> None:  # type: ignore[no-untyped-def]
    data = multilabel_data()
    with pytest.raises(IncompatibleInputError, match="data are multi-label, model tiny_cxr is"):
        evaluate(make_card(input=InputSpec(size=(32, 32))), band_backend(), data)
    with pytest.raises(IncompatibleInputError, match="data are single-label"):
        evaluate(multilabel_card(make_card), band_backend(), toy_data())
    two = make_card(task="multilabel", labels=("Effusion", "Nodule"))
    with pytest.raises(IncompatibleInputError, match="data has labels") as caught:
        evaluate(two, band_backend(), data)
    assert caught.value.path == "bands.npz"


def test_summarize_uses_the_card_calibration_method(make_card) -> None:  # type: ignore[no-untyped-def]
    from radlens.evaluation import metrics as m
    from radlens.models.card import CalibrationMethod, Task

    logits = np.random.default_rng(0).normal(0, 2, (30, 3))
    y = np.arange(30) % 3
    vector = Calibration(CalibrationMethod.VECTOR, 1.0, (0.5, 1.0, 2.0), (0.3, 0.0, -0.3))
    card = make_card(labels=("A", "B", "C"), task=Task.MULTICLASS, calibration=vector)
    result = summarize(card, logits, y, "val")
    np.testing.assert_allclose(result.probs, vector.probabilities(logits, Task.MULTICLASS))
    assert result.metrics["ece_uncalibrated"] == m.ece(y, m.softmax(logits))
    assert result.metrics["ece"] == m.ece(y, result.probs)
