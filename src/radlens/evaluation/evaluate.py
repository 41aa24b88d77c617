"""``evaluate``: a model (card + backend) over a labelled split, with the card's metrics.

The figures in a card's ``metrics`` come from this function, and ``radlens evaluate``
calls it too, so anyone can check a card by rerunning it. Multi-label models are measured
label by label and averaged (see ``radlens.evaluation.metrics``); their ``per_class`` holds
one entry per label.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from radlens.errors import IncompatibleInputError
from radlens.evaluation import metrics as m
from radlens.inference.backends import Backend
from radlens.inference.preprocess import prepare
from radlens.io.datasets import LabelledImages
from radlens.models.card import ModelCard, Task


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Metrics of one model on one split, and the calibrated probabilities.

    Attributes:
        per_class: class (or label) name -> figures; ``n`` counts the items of that class
            (for a multi-label model, the items with that label: its positives).
        probs: ``(N, K)`` calibrated probabilities (softmax, or sigmoid per label).
        labels: the true labels, ``(N,)`` class indices or ``(N, K)`` 0/1 for multi-label.
    """

    model: str
    version: str
    split: str
    n: int
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    probs: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)


def prepare_batch(card: ModelCard, images: list[np.ndarray], restore: bool = True) -> np.ndarray:
    """Model inputs for a list of training-format images, exactly as at inference
    (``restore=False``: without the card's denoising, as the out-of-distribution score reads
    them)."""
    return np.stack([prepare(img, card.input, restore) for img in images])


def predict_logits(
    card: ModelCard, backend: Backend, data: LabelledImages, batch_size: int = 64
) -> np.ndarray:
    """Raw logits for every item, preprocessed exactly as at inference."""
    out = []
    for start in range(0, len(data), batch_size):
        batch = prepare_batch(card, data.images[start : start + batch_size])
        out.append(backend.run(batch)[card.outputs[0]])
    return np.concatenate(out).astype(np.float64)


def summarize(card: ModelCard, logits: np.ndarray, y: np.ndarray, split: str) -> Evaluation:
    """Metrics from logits: AUC, ACC (of the class the card reports: argmax, or an ordinal
    card's ``grade_rule``), ECE before (T = 1) and after the card's calibration, NLL, and
    rates at the operating threshold."""
    if card.task is Task.MULTILABEL:
        return summarize_multilabel(card, logits, y, split)
    raw = m.softmax(logits)
    probs = card.calibration.probabilities(logits, card.task)
    pred = card.decide(probs)
    metrics = {
        "auc": m.auc(y, probs),
        "acc": m.accuracy(y, pred),
        "ece": m.ece(y, probs),
        "ece_uncalibrated": m.ece(y, raw),
        "nll": m.nll(y, probs),
    }
    if card.task is Task.BINARY:
        k = card.positive_index
        rates = m.binary_rates(y == k, probs[:, k], card.threshold)
        metrics.update({f"{name}_at_operating": v for name, v in rates.items()})
    if card.task is Task.ORDINAL:
        metrics["qwk"] = m.quadratic_weighted_kappa(y, pred, len(card.labels))
        metrics["mae"] = m.mean_abs_error(y, pred)
    per_class = {}
    for k, name in enumerate(card.labels):
        mask = y == k
        per_class[name] = {
            "n": float(mask.sum()),
            "recall": float((pred[mask] == k).mean()) if mask.any() else float("nan"),
            "auc": m.auc_binary(y == k, probs[:, k]),
        }
    return Evaluation(card.name, card.version, split, len(y), metrics, per_class, probs, y)


def summarize_multilabel(
    card: ModelCard, logits: np.ndarray, y: np.ndarray, split: str
) -> Evaluation:
    """Multi-label metrics from logits: probabilities are ``sigmoid(logits / T)`` per label.

    Metrics: ``auc``, ``acc``, ``ece`` (calibrated), ``ece_uncalibrated`` (T = 1) and
    ``nll``, each by the multi-label definitions in ``radlens.evaluation.metrics``. Per
    label: ``n`` positives, ``auc``, and ``sensitivity`` and ``specificity`` at the card's
    operating threshold (positive when ``p >= threshold``, as a finding is).
    """
    probs = card.calibration.probabilities(logits, card.task)
    metrics = {
        "auc": m.auc_multilabel(y, probs),
        "acc": m.accuracy_multilabel(y, probs),
        "ece": m.ece_multilabel(y, probs),
        "ece_uncalibrated": m.ece_multilabel(y, m.sigmoid(logits)),
        "nll": m.nll_multilabel(y, probs),
    }
    per_class = {}
    for k, name in enumerate(card.labels):
        rates = m.binary_rates(y[:, k], probs[:, k], card.threshold)
        per_class[name] = {
            "n": float(y[:, k].sum()),
            "auc": m.auc_binary(y[:, k], probs[:, k]),
            "sensitivity": rates["sensitivity"],
            "specificity": rates["specificity"],
        }
    return Evaluation(card.name, card.version, split, len(y), metrics, per_class, probs, y)


def evaluate(card: ModelCard, backend: Backend, data: LabelledImages) -> Evaluation:
    """Run ``card``'s model over ``data`` and compute its metrics.

    Example:
        >>> ev = evaluate(card, OnnxBackend(model_dir / "model.onnx"), val)  # doctest: +SKIP
        >>> round(ev.metrics["auc"], 3)  # doctest: +SKIP
        0.995
    """
    check_labels(card, data)
    return summarize(card, predict_logits(card, backend, data), data.labels, data.split)


def check_labels(card: ModelCard, data: LabelledImages) -> None:
    """Raise unless ``data`` is labelled for ``card``'s task and classes (or labels).

    Raises:
        IncompatibleInputError: single- vs multi-label, a different number of classes, or
            the model's class names in another order (label index ``i`` would be scored as
            the model's class ``i``, silently inverting the metrics).
    """
    if data.multilabel != (card.task is Task.MULTILABEL):
        kind = "multi-label" if data.multilabel else "single-label"
        raise IncompatibleInputError(
            data.source,
            f"data are {kind}, model {card.name} is {card.task.value}; pass data labelled "
            "for the model's task",
        )
    # For multi-label data the names are its label columns, one per model output.
    if len(data.label_names) != len(card.labels):
        noun = "labels" if data.multilabel else "classes"
        raise IncompatibleInputError(
            data.source,
            f"data has {noun} {list(data.label_names)}, model {card.name} has "
            f"{list(card.labels)}; pass data labelled with the model's {noun}",
        )
    if tuple(data.label_names) != tuple(card.labels) and set(data.label_names) == set(card.labels):
        raise IncompatibleInputError(
            data.source,
            f"data has the classes {list(data.label_names)} in another order than model "
            f"{card.name} ({list(card.labels)}); read it with "
            "read_labelled(path, split, card.labels)",
        )
