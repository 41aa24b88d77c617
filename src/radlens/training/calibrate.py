"""``radlens calibrate``: refit a trained model's calibration and thresholds, not its weights.

The model's fp32 weights are run over the val split of its data (preprocessed exactly as at
inference, through ONNX Runtime), and :func:`radlens.evaluation.calibration.calibrate_card`
(the code ``radlens train`` ends with) chooses and fits the calibration, refits the
operating thresholds and the abstain band on the new calibrated probabilities and remeasures
the val metrics, which depend on both. Only ``calibration``, ``thresholds`` and
``metrics.val`` of ``card.json`` change; the weights, their sha256 and every other field are
kept, and the folder is loaded again through the registry before returning.

No torch: this runs on the run-time install.

The ``high_sensitivity`` threshold keeps a val sensitivity. It is, in order: the one asked
for; the recipe's ``high_sensitivity`` when the card's ``training.recipe`` file is found
(relative to the working directory, as the card records it); otherwise the sensitivity the
card's current ``high_sensitivity`` threshold reaches on val under the current calibration.
For a binary model every method is increasing in the logit difference, so that last choice
keeps the same val decision.

Example:
    >>> change = recalibrate_model(Path("src/radlens/zoo/cxr_pneumonia"))  # doctest: +SKIP
    >>> change.before.method, change.after.method  # doctest: +SKIP
    (<CalibrationMethod.TEMPERATURE: 'temperature'>, <CalibrationMethod.PLATT: 'platt'>)

A detector has no probabilities to calibrate: :func:`refit_operating_score` refits the score
a box needs to be reported (the best val F1 of boxes at IoU 0.5,
:func:`radlens.evaluation.detection.operating_point`, as ``radlens train`` now fits it) and
its val figures, and appends the change to ``train.log``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from radlens.errors import ConfigError
from radlens.evaluation import metrics as m
from radlens.evaluation.calibration import FOLDS, SEED, calibrate_card, describe
from radlens.evaluation.detection import OperatingPoint, measure_detector
from radlens.evaluation.evaluate import check_labels, predict_logits
from radlens.inference.backends import OnnxBackend
from radlens.io.box_sets import read_boxes
from radlens.io.datasets import read_labelled
from radlens.models.card import Calibration, ModelCard, Task, require_classifier, write_card
from radlens.models.registry import load_model
from radlens.training.recipe import read_recipe

log = logging.getLogger(__name__)

DEFAULT_SENSITIVITY = 0.95  # the recipe default


@dataclass(frozen=True)
class Refit:
    """Which model was refitted, in which folder, from which data's val split (``n_val``)."""

    model: str
    folder: Path
    data: Path
    n_val: int


@dataclass(frozen=True)
class CalibrationChange(Refit):
    """What ``radlens calibrate`` changed in one card.

    Attributes:
        data: the data whose val split was used; ``n_val`` its size.
        before, after: the card's calibration before and after.
        thresholds_before, thresholds_after: the card's thresholds before and after.
        metrics_before, metrics_after: the card's val metrics before and after.
        high_sensitivity: the val sensitivity the ``high_sensitivity`` threshold keeps, and
            ``high_sensitivity_from`` where that figure came from.
    """

    before: Calibration
    after: Calibration
    thresholds_before: dict[str, float] = field(default_factory=dict)
    thresholds_after: dict[str, float] = field(default_factory=dict)
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)
    high_sensitivity: float = DEFAULT_SENSITIVITY
    high_sensitivity_from: str = "default"


def recalibrate_model(
    folder: Path,
    data: Path | None = None,
    high_sensitivity: float | None = None,
    threads: int = 2,
    folds: int = FOLDS,
    seed: int = SEED,
    version: str | None = None,
) -> CalibrationChange:
    """Refit ``folder``'s calibration, thresholds and val metrics from its val split.

    Args:
        folder: a model folder (``card.json`` + weights).
        data: the labelled data (``.npz`` or folder); default the card's training data.
        high_sensitivity: the val sensitivity of the ``high_sensitivity`` threshold
            (default: see the module docstring).
        threads: ONNX Runtime threads.
        folds, seed: the cross-validation that chooses the method.
        version: the card's new version (default: unchanged).

    Raises:
        ConfigError: the data cannot be found, or ``high_sensitivity`` is not in (0, 1].
        IncompatibleInputError: the data are not labelled for this model.
        ModelIntegrityError: the weights do not match the card (before or after).
    """
    model = load_model(folder)
    card = model.card
    require_classifier(card, "calibrate")
    source = _data_of(card, data)
    if high_sensitivity is not None and not 0 < high_sensitivity <= 1:
        raise ConfigError(f"high_sensitivity must lie in (0, 1], got {high_sensitivity}")
    val = read_labelled(source, "val", card.labels, card.task is Task.MULTILABEL)
    check_labels(card, val)
    logits = predict_logits(card, OnnxBackend(model.weights, threads=threads), val)
    sensitivity, where = _high_sensitivity(card, logits, val.labels, high_sensitivity)
    new, _ = calibrate_card(card, logits, val.labels, sensitivity, folds, seed)
    new = replace(new, version=version or card.version)
    write_card(new, model.folder / "card.json")
    load_model(model.folder)  # the registry still accepts the folder
    change = CalibrationChange(
        model=card.name,
        folder=model.folder,
        data=source,
        n_val=len(val),
        before=card.calibration,
        after=new.calibration,
        thresholds_before=dict(card.thresholds),
        thresholds_after=dict(new.thresholds),
        metrics_before=dict(card.metrics.get("val", {})),
        metrics_after=dict(new.metrics["val"]),
        high_sensitivity=sensitivity,
        high_sensitivity_from=where,
    )
    _log(change)
    return change


@dataclass(frozen=True)
class OperatingChange(Refit):
    """What ``radlens calibrate`` changed in a detector's card: its ``operating`` score
    (``before`` -> ``point.score``) and val metrics."""

    before: float
    point: OperatingPoint
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)


def refit_operating_score(
    folder: Path, data: Path | None = None, threads: int = 2, version: str | None = None
) -> OperatingChange:
    """Refit a detector's operating score and val metrics from its val split (no weights
    change, no torch); ``version``, when given, becomes the card's version.

    Raises:
        ConfigError: the card is not a detector's, or the data cannot be found.
        ModelIntegrityError: the weights do not match the card (before or after).
    """
    model = load_model(folder)
    card = model.card
    if card.task is not Task.DETECTION:
        raise ConfigError(f"{card.name} is a {card.task.value} model, not a detector")
    source = _data_of(card, data)
    val = read_boxes(source, "val", card.labels)
    backend = OnnxBackend(model.weights, threads=threads)
    scores, point = measure_detector(card, backend, val, default=card.threshold)
    metrics = card.metrics.get("val", {}) | scores.as_metrics() | point.as_metrics()
    new = replace(
        card,
        version=version or card.version,
        thresholds=card.thresholds | {"operating": point.score},
        metrics=card.metrics | {"val": metrics},
    )
    write_card(new, model.folder / "card.json")
    load_model(model.folder)
    change = OperatingChange(
        card.name,
        model.folder,
        source,
        len(val),
        card.threshold,
        point,
        dict(card.metrics.get("val", {})),
        metrics,
    )
    log.info("%s: val n=%d from %s; %s", card.name, len(val), source, point.describe())
    train_log = model.folder / "train.log"
    if train_log.exists():
        with train_log.open("a", encoding="utf-8") as handle:
            handle.write(
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} radlens calibrate: operating score "
                f"{change.before:g} -> {point.score:.6g} on val ({point.describe()}), "
                f"version {card.version} -> {new.version}\n"
            )
    return change


def _data_of(card: ModelCard, data: Path | None) -> Path:
    source = data if data is not None else card.training.data_path()
    if not source.exists():
        raise ConfigError(
            f"{card.name}: data {source} not found (the card's path is relative to where the "
            "model was trained); pass --data"
        )
    return source


def _high_sensitivity(
    card: ModelCard, logits: np.ndarray, y: np.ndarray, asked: float | None
) -> tuple[float, str]:
    """The sensitivity target for the ``high_sensitivity`` threshold, and its source."""
    if asked is not None:
        return asked, "asked"
    recipe = Path(card.training.recipe) if card.training.recipe else None
    if recipe is not None and recipe.is_file():
        return read_recipe(recipe).high_sensitivity, f"recipe {recipe}"
    current = card.thresholds.get("high_sensitivity")
    if card.task is Task.BINARY and current is not None:
        k = card.positive_index
        score = card.calibration.probabilities(logits, card.task)[:, k]
        reached = m.binary_rates(y == k, score, current)["sensitivity"]
        return reached, "the current threshold on val"
    return DEFAULT_SENSITIVITY, "default"


def _log(change: CalibrationChange) -> None:
    log.info(
        "%s: val n=%d from %s; calibration %s -> %s",
        change.model,
        change.n_val,
        change.data,
        describe(change.before),
        describe(change.after),
    )
    log.info(
        "%s: out-of-fold NLL %s; ECE before %s, after %s in-sample, %s out of fold "
        "(perfect calibration at this n: mean %s, 95th percentile %s)",
        change.model,
        change.after.cv_nll,
        change.after.ece_before,
        change.after.ece_after,
        change.after.ece_cv,
        change.after.ece_noise_mean,
        change.after.ece_noise_p95,
    )
    for name, table in (
        ("threshold", (change.thresholds_before, change.thresholds_after)),
        ("val metric", (change.metrics_before, change.metrics_after)),
    ):
        old, new = table
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                log.info("%s: %s %s: %s -> %s", change.model, name, key, old.get(key), new.get(key))
