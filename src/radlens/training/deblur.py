"""``radlens deblur``: fit when a 2D classifier reads its input after Wiener deconvolution.

The card's :class:`radlens.models.card.Deblur` holds the largest blur estimate
(:func:`radlens.inference.restore.blur_level`) over the model's training images, measured at
its input size as :func:`radlens.inference.preprocess.prepare_2d` measures it; an input at
least ``factor`` times as blurred (and whose blur looks Gaussian, not pixelated) is
deconvolved before the model reads it. With ``factor`` at least 1 no training image is ever
deconvolved, so the model reads what it was trained on exactly as before; the share of val
images at or above the trigger is recorded (``val_deblurred``), and when it is not 0 the
card's val figures no longer match until ``radlens calibrate`` refits them.

numpy only (no torch, no onnx): a card can be given deblurring on any radlens install.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from radlens.inference.preprocess import blur_of_image
from radlens.models.card import Deblur, ModelCard, read_card, write_card
from radlens.training.denoise import (
    MAX_TRAIN,
    ceil_at,
    note_in_train_log,
    read_splits,
    require_2d_classifier,
)

CALIBRATION_SIGMAS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
"""Known Gaussian blurs (px at the input size) the estimator is calibrated against."""
CALIBRATION_IMAGES = 200
"""Training images blurred for the calibration (a seeded sample when there are more)."""


@dataclass(frozen=True)
class DeblurFit:
    """What :func:`fit_deblur` found: the spec, and how far val reaches."""

    spec: Deblur
    n_val: int
    val_blur_max: float


def fit_deblur(
    card: ModelCard,
    data: Path,
    factor: float = 2.0,
    wiener_k: float = 0.01,
    max_train: int = MAX_TRAIN,
    seed: int = 0,
) -> DeblurFit:
    """The :class:`Deblur` spec of ``card`` from its labelled data at ``data``.

    Raises:
        UnsupportedTaskError: the card is not a 2D classifier.
        ValueError: ``factor`` under 1 or ``wiener_k`` not positive.
    """
    require_2d_classifier(card, "deblurring")
    Deblur(factor=factor, wiener_k=wiener_k)  # refuses bad settings before reading any image
    train, val = read_splits(card, data, max_train, seed)
    on_train = np.array([blur_of_image(im, card.input) for im in train.images])
    on_val = np.array([blur_of_image(im, card.input) for im in val.images])
    blur_max = ceil_at(float(on_train.max()))
    sample = train.sample(CALIBRATION_IMAGES, seed)
    spec = Deblur(
        factor=factor,
        blur_max=blur_max,
        wiener_k=wiener_k,
        n_train=len(train),
        val_deblurred=round(float((on_val >= factor * blur_max).mean()), 6),
        calibration=calibrate(sample.images, card, blur_max),
    )
    return DeblurFit(spec, len(val), float(on_val.max()))


def calibrate(
    images: list[np.ndarray], card: ModelCard, blur_max: float
) -> tuple[tuple[float, float], ...]:
    """``(estimated excess, sigma)`` pairs: the median excess blur estimate
    (``sqrt(estimate^2 - blur_max^2)``) of ``images`` blurred by each of
    ``CALIBRATION_SIGMAS`` at the input size; a sigma whose median is not above the previous
    one's (the estimate saturating) is left out, so the pairs increase in both."""
    pairs: list[tuple[float, float]] = []
    for sigma in CALIBRATION_SIGMAS:
        blurs = np.array([blur_of_image(im, card.input, extra_blur=sigma) for im in images])
        excess = float(np.median(np.sqrt(np.maximum(blurs**2 - blur_max**2, 0.0))))
        if excess > 0 and (not pairs or excess > pairs[-1][0]):
            pairs.append((round(excess, 4), sigma))
    return tuple(pairs)


def describe_calibration(spec: Deblur) -> str:
    """The calibration in words, for train.log and the CLI.

    Example:
        >>> describe_calibration(Deblur(blur_max=1.0, calibration=((0.9, 1.0), (7.8, 8.0))))
        'excess estimate 0.9-7.8 px read as a 1-8 px Gaussian'
    """
    if not spec.calibration:
        return "excess estimate read as it is (no calibration)"
    (e0, s0), (e1, s1) = spec.calibration[0], spec.calibration[-1]
    return f"excess estimate {e0:g}-{e1:g} px read as a {s0:g}-{s1:g} px Gaussian"


def add_deblur(
    folder: Path,
    data: Path,
    factor: float = 2.0,
    wiener_k: float = 0.01,
    version: str | None = None,
) -> tuple[ModelCard, ModelCard, DeblurFit]:
    """Fit and write the card's ``deblur`` in a model folder; returns the card before and
    after, and the fit. Weights, calibration and OOD statistics are not touched."""
    card = read_card(folder / "card.json")
    fit = fit_deblur(card, data, factor, wiener_k)
    new = replace(card, input=replace(card.input, deblur=fit.spec), version=version or card.version)
    write_card(new, folder / "card.json")
    note_in_train_log(
        folder,
        f"radlens deblur: factor {factor}, wiener_k {wiener_k}, blur above "
        f"{fit.spec.trigger:.4f} px ({factor} x {fit.spec.blur_max}, the largest of "
        f"{fit.spec.n_train} train images); {describe_calibration(fit.spec)}; val deblurred "
        f"{fit.spec.val_deblurred:.1%}, version {card.version} -> {new.version}",
    )
    return card, new, fit
