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

A model whose val is too small to fit or check a calibration may pool val with its recipe's
cross-fitted train logits (``cross_fitted``: an ``.npz`` of ``logits`` and ``labels`` from
``benchmarks/bench_crossfit.py --save-logits``). The file is copied beside the card as
:data:`CROSS_FITTED_FILE` with its hash in ``calibration.cross_fitted``, so a later
``radlens calibrate`` of the folder refits on the same pool; ``val_only`` drops it.
``choose_only`` uses the pool to choose the method alone, fitted on val (the record's
``use``: ``choose``; kept by a later refit of the folder).

A detector has no probabilities to calibrate: :func:`refit_operating_score` refits the score
a box needs to be reported (the best val F1 of boxes at IoU 0.5,
:func:`radlens.evaluation.detection.operating_point`, as ``radlens train`` now fits it) and
its val figures, and appends the change to ``train.log``.
"""

from __future__ import annotations

import logging
import shutil
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from radlens.errors import ConfigError, IncompatibleInputError, ModelIntegrityError
from radlens.evaluation import metrics as m
from radlens.evaluation.calibration import (
    FOLDS,
    SEED,
    CrossFittedLogits,
    calibrate_card,
    describe,
)
from radlens.evaluation.detection import OperatingPoint, measure_detector
from radlens.evaluation.evaluate import check_labels, predict_logits
from radlens.inference.backends import OnnxBackend
from radlens.io.box_sets import read_boxes
from radlens.io.datasets import read_labelled
from radlens.models.card import (
    Calibration,
    CrossFitted,
    ModelCard,
    Task,
    require_classifier,
    write_card,
)
from radlens.models.registry import load_model, sha256_of
from radlens.training.recipe import read_recipe

log = logging.getLogger(__name__)

DEFAULT_SENSITIVITY = 0.95  # the recipe default
CROSS_FITTED_FILE = "cross_fitted.npz"  # beside the card


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
    cross_fitted: Path | None = None,
    val_only: bool = False,
    choose_only: bool = False,
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
        cross_fitted: cross-fitted train logits to pool with val (module docstring);
            default: the ones the card already names, if any.
        val_only: fit on val alone, dropping the card's cross-fitted items.
        choose_only: the cross-fitted items (given, or the card's) choose the method only;
            it is fitted on val alone.

    Raises:
        ConfigError: the data or the cross-fitted file cannot be found, ``val_only`` is
            given with ``cross_fitted`` or ``choose_only``, ``choose_only`` finds no
            cross-fitted items, or ``high_sensitivity`` is not in (0, 1].
        IncompatibleInputError: the data or the cross-fitted file do not fit this model.
        ModelIntegrityError: the weights, or the cross-fitted file beside the card, do not
            match the card.
    """
    model = load_model(folder)
    card = model.card
    require_classifier(card, "calibrate")
    if val_only and (cross_fitted is not None or choose_only):
        raise ConfigError("val only uses no cross-fitted items: pass it alone")
    source = _data_of(card, data)
    if high_sensitivity is not None and not 0 < high_sensitivity <= 1:
        raise ConfigError(f"high_sensitivity must lie in (0, 1], got {high_sensitivity}")
    pool = None if val_only else _cross_fitted_pool(card, model.folder, cross_fitted)
    if choose_only:
        if pool is None:
            raise ConfigError(
                f"{card.name}: choosing the method on cross-fitted items needs them: pass "
                "--cross-fitted"
            )
        pool = replace(pool, record=replace(pool.record, use="choose"))
    val = read_labelled(source, "val", card.labels, card.task is Task.MULTILABEL)
    check_labels(card, val)
    logits = predict_logits(card, OnnxBackend(model.weights, threads=threads), val)
    sensitivity, where = _high_sensitivity(card, logits, val.labels, high_sensitivity)
    new, _ = calibrate_card(card, logits, val.labels, sensitivity, folds, seed, pool)
    new = replace(new, version=version or card.version)
    if pool is not None and cross_fitted is not None:
        kept = model.folder / CROSS_FITTED_FILE
        if cross_fitted.resolve() != kept.resolve():
            shutil.copyfile(cross_fitted, kept)
    if pool is None:
        (model.folder / CROSS_FITTED_FILE).unlink(missing_ok=True)
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
    train_log = model.folder / "train.log"
    if train_log.exists():  # how the card's calibration was made, beside how its weights were
        pooled = new.calibration.cross_fitted
        with train_log.open("a", encoding="utf-8") as handle:
            handle.write(
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} radlens calibrate: "
                f"{describe(card.calibration)} -> {describe(new.calibration)} on val n={len(val)}"
                + pooled_words(pooled)
                + f", version {card.version} -> {new.version}\n"
            )
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


def read_cross_fitted(path: Path, card: ModelCard, use: str = "fit") -> CrossFittedLogits:
    """Cross-fitted ``logits`` ``(N, classes)`` and ``labels`` ``(N,)`` for ``card``'s model
    from an ``.npz``, with the record the card keeps (its file name beside the card, and
    ``use``: :class:`CrossFitted`).

    Raises:
        ConfigError: the file is missing, or the model is multi-label (one shared
            temperature, fitted on val).
        IncompatibleInputError: the file is not an ``.npz`` of logits and labels of this
            model's classes.
    """
    if card.task is Task.MULTILABEL:
        raise ConfigError(f"{card.name}: a multi-label model is calibrated on val alone")
    if not path.is_file():
        raise ConfigError(f"cross-fitted logits {path} not found")
    classes = len(card.labels)
    try:
        with np.load(path, allow_pickle=False) as saved:
            logits, labels = np.asarray(saved["logits"]), np.asarray(saved["labels"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise IncompatibleInputError(
            path, f"not an .npz with 'logits' and 'labels' arrays ({exc})"
        ) from exc
    if logits.ndim != 2 or logits.shape[1] != classes or not np.isfinite(logits).all():
        raise IncompatibleInputError(
            path, f"logits must be finite, (N, {classes}) for {card.name}; got {logits.shape}"
        )
    if labels.shape != (len(logits),) or not np.issubdtype(labels.dtype, np.integer):
        raise IncompatibleInputError(path, f"labels must be {len(logits)} integers")
    if len(labels) == 0 or labels.min() < 0 or labels.max() >= classes:
        raise IncompatibleInputError(path, f"labels must lie in 0-{classes - 1} ({card.name})")
    record = CrossFitted(CROSS_FITTED_FILE, sha256_of(path), len(labels), use)
    return CrossFittedLogits(logits.astype(np.float64), labels.astype(np.int64), record)


def _cross_fitted_pool(
    card: ModelCard, folder: Path, given: Path | None
) -> CrossFittedLogits | None:
    """The items to pool with val: ``given``, else the card's own file (its hash checked)."""
    if given is not None:
        return read_cross_fitted(given, card)
    named = card.calibration.cross_fitted
    if named is None:
        return None
    path = folder / named.file
    if not path.is_file() or sha256_of(path) != named.sha256:
        raise ModelIntegrityError(
            f"{card.name}: {named.file} beside the card is missing or differs from the card's "
            "sha256; pass the cross-fitted file again, or calibrate on val only"
        )
    return read_cross_fitted(path, card, named.use)


def pooled_words(pooled: CrossFitted | None) -> str:
    """How a calibration used cross-fitted items, for logs: nothing (val alone), ``" + N
    cross-fitted train items"`` (chosen and fitted on the pool) or the method chosen with
    them."""
    if pooled is None:
        return ""
    if pooled.fitted_on_pool:
        return f" + {pooled.n} cross-fitted train items"
    return f" (method chosen on val + {pooled.n} cross-fitted train items)"


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
    pooled = change.after.cross_fitted
    log.info(
        "%s: val n=%d from %s%s; calibration %s -> %s",
        change.model,
        change.n_val,
        change.data,
        pooled_words(pooled),
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
