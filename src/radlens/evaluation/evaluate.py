"""``evaluate``: a model (card + backend) over a labelled split, with the card's metrics.

The figures in a card's ``metrics`` come from this function, and ``radlens evaluate``
calls it too, so anyone can check a card by rerunning it.
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
    """Metrics of one model on one split, and the raw calibrated probabilities."""

    model: str
    version: str
    split: str
    n: int
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    probs: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)


def predict_logits(
    card: ModelCard, backend: Backend, data: LabelledImages, batch_size: int = 64
) -> np.ndarray:
    """Raw logits for every item, preprocessed exactly as at inference."""
    out = []
    for start in range(0, len(data), batch_size):
        batch = np.stack(
            [prepare(img, card.input) for img in data.images[start : start + batch_size]]
        )
        out.append(backend.run(batch)[card.outputs[0]])
    return np.concatenate(out).astype(np.float64)


def summarize(card: ModelCard, logits: np.ndarray, y: np.ndarray, split: str) -> Evaluation:
    """Metrics from logits: AUC, ACC (argmax), ECE before/after calibration, rates."""
    raw = m.softmax(logits)
    probs = m.softmax(logits, card.calibration.temperature)
    pred = probs.argmax(axis=1)
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


def evaluate(card: ModelCard, backend: Backend, data: LabelledImages) -> Evaluation:
    """Run ``card``'s model over ``data`` and compute its metrics.

    Example:
        >>> ev = evaluate(card, OnnxBackend(model_dir / "model.onnx"), val)  # doctest: +SKIP
        >>> round(ev.metrics["auc"], 3)  # doctest: +SKIP
        0.995
    """
    if len(data.label_names) != len(card.labels):
        raise IncompatibleInputError(
            data.source,
            f"data has classes {list(data.label_names)}, model {card.name} has "
            f"{list(card.labels)}; pass data labelled with the model's classes",
        )
    return summarize(card, predict_logits(card, backend, data), data.labels, data.split)
