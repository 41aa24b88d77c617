"""``radlens denoise``: fit when a 2D classifier reads its input after a median filter.

The card's :class:`radlens.models.card.Denoise` thresholds are the largest noise level and
impulse share (:mod:`radlens.inference.restore`) over the model's training images, measured
at its input size as :func:`radlens.inference.preprocess.prepare_2d` measures them; an input
above either is median-filtered before the model reads it. No training image is ever
filtered, so the model reads what it was trained on exactly as before; the share of val
images above a threshold is recorded (``val_filtered``), and when it is not 0 the card's
val figures no longer match until ``radlens calibrate`` refits them.

numpy only (no torch, no onnx): a card can be given denoising on any radlens install.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from radlens.errors import UnsupportedTaskError
from radlens.inference.preprocess import noise_of
from radlens.io.datasets import LabelledImages, read_labelled
from radlens.models.card import Denoise, ModelCard, Task, read_card, write_card

MAX_TRAIN = 3000


@dataclass(frozen=True)
class DenoiseFit:
    """What :func:`fit_denoise` found: the spec, and how far the two splits reach."""

    spec: Denoise
    n_val: int
    val_noise_max: float
    val_impulse_max: float


def require_2d_classifier(card: ModelCard, what: str) -> None:
    """Refuse a card that is not a 2D classifier: ``what`` (a test-time restoration) is
    fitted for those only.

    Raises:
        UnsupportedTaskError: naming the card and what it is.
    """
    if card.input.dims != 2 or card.task in (Task.SEGMENTATION, Task.DETECTION):
        raise UnsupportedTaskError(
            f"{card.name}: {what} is fitted for 2D classifiers, not a "
            f"{card.input.dims}D {card.task.value} model"
        )


def read_splits(
    card: ModelCard, data: Path, max_train: int = MAX_TRAIN, seed: int = 0
) -> tuple[LabelledImages, LabelledImages]:
    """The card's train split (a seeded sample of at most ``max_train``) and val split."""
    multilabel = card.task is Task.MULTILABEL
    train = read_labelled(data, "train", card.labels, multilabel).sample(max_train, seed)
    return train, read_labelled(data, "val", card.labels, multilabel)


def fit_denoise(
    card: ModelCard, data: Path, median: int = 5, max_train: int = MAX_TRAIN, seed: int = 0
) -> DenoiseFit:
    """The :class:`Denoise` spec of ``card`` from its labelled data at ``data``.

    Raises:
        UnsupportedTaskError: the card is not a 2D classifier.
        ValueError: ``median`` is not 3 or 5.
    """
    require_2d_classifier(card, "denoising")
    Denoise(median=median)  # refuses a filter size it does not have before reading any image
    train, val = read_splits(card, data, max_train, seed)
    on_train = np.array([noise_of(im, card.input) for im in train.images])
    on_val = np.array([noise_of(im, card.input) for im in val.images])
    noise_above = ceil_at(float(on_train[:, 0].max()))
    impulse_above = ceil_at(float(on_train[:, 1].max()))
    above = (on_val[:, 0] > noise_above) | (on_val[:, 1] > impulse_above)
    spec = Denoise(
        median=median,
        noise_above=noise_above,
        impulse_above=impulse_above,
        n_train=len(train),
        val_filtered=round(float(above.mean()), 6),
    )
    return DenoiseFit(spec, len(val), float(on_val[:, 0].max()), float(on_val[:, 1].max()))


def ceil_at(value: float, digits: int = 6) -> float:
    """``value`` rounded up at ``digits`` decimals, so the training maximum stays inside.

    Example:
        >>> ceil_at(0.0012341)
        0.001235
    """
    return float(math.ceil(value * 10**digits) / 10**digits)


def note_in_train_log(folder: Path, text: str) -> None:
    """Append a dated line to the model folder's ``train.log`` when it has one: how a card
    step was made, beside how its weights were."""
    log = folder / "train.log"
    if log.exists():
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")


def add_denoise(
    folder: Path, data: Path, median: int = 5, version: str | None = None
) -> tuple[ModelCard, ModelCard, DenoiseFit]:
    """Fit and write the card's ``denoise`` in a model folder; returns the card before and
    after, and the fit. Weights, calibration and OOD statistics are not touched."""
    card = read_card(folder / "card.json")
    fit = fit_denoise(card, data, median)
    new = replace(
        card, input=replace(card.input, denoise=fit.spec), version=version or card.version
    )
    write_card(new, folder / "card.json")
    note_in_train_log(
        folder,
        f"radlens denoise: median {median}, noise above {fit.spec.noise_above}, impulses "
        f"above {fit.spec.impulse_above} (largest of {fit.spec.n_train} train images); val "
        f"filtered {fit.spec.val_filtered:.1%}, version {card.version} -> {new.version}",
    )
    return card, new, fit
