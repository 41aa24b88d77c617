"""``segment``: one image + a segmentation model card + a backend -> a finding with a mask
and its measurements.

The model reads the prepared input (``prepare_2d``, as training did) and returns
``mask_logits`` on the input grid. Their sigmoid is resized back to the source image
(bilinear, undoing the input placement), thresholded at the card's ``operating``
threshold and reduced to its largest connected component: the mask of the finding, on
the source grid (so a DICOM SEG of it lies on the source image). What is measured
on it depends on ``card.segmentation.measure``; for ``head_circumference`` it is the
ellipse, HC and GA of :mod:`radlens.inference.biometry`.

Example:
    >>> found = segment(image, card, OnnxBackend(weights), pixel_size_mm=0.12)  # doctest: +SKIP
    >>> [(m.code, m.unit) for m in found[0].measurements]  # doctest: +SKIP
    [('head_circumference', 'mm'), ('gestational_age', 'wk')]
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image as PILImage

from radlens.domain.findings import Box, Finding, Measurement
from radlens.domain.imaging import Image, Patient
from radlens.errors import InferenceError
from radlens.inference.backends import Backend
from radlens.inference.biometry import GA_CITATION, head_biometry
from radlens.inference.ood import InputStats, card_input_ood
from radlens.inference.preprocess import Placement, prepare_2d
from radlens.inference.quality import check_quality
from radlens.models.card import Measure, ModelCard, Task

NO_HEAD = "no fetal head found in the image"
NO_PIXEL_SIZE = (
    "pixel size unknown: no head circumference (DICOM Pixel Spacing or ultrasound region "
    "calibration missing; for PNG input give --pixel-size-mm)"
)
HC_METHOD = (
    "least-squares ellipse (scikit-image EllipseModel) of the segmented skull boundary; "
    "perimeter by Ramanujan's second approximation"
)


def sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z.astype(np.float64)))
    return out.astype(np.float32)


def to_source_grid(prob: np.ndarray, where: Placement) -> np.ndarray:
    """Resize an input-grid probability map back onto the source image (bilinear)."""
    rows, cols = where.source_shape
    in_rows = round(rows / where.scale_y)
    in_cols = round(cols / where.scale_x)
    y0, x0 = round(where.offset_y), round(where.offset_x)
    inner = prob[y0 : y0 + in_rows, x0 : x0 + in_cols].astype(np.float32)
    pil = PILImage.fromarray(inner, mode="F").resize((cols, rows), PILImage.Resampling.BILINEAR)
    return np.asarray(pil, np.float32)


def mask_probabilities(
    arrays: list[np.ndarray], card: ModelCard, backend: Backend
) -> list[np.ndarray]:
    """Foreground probability of every pixel of each 2D image, on its own source grid."""
    prepared = [prepare_2d(a, card.input, None) for a in arrays]
    batch = np.stack([p[0] for p in prepared])
    logits = backend.run(batch)[card.outputs[0]]
    return [to_source_grid(sigmoid(logits[i, 0]), where) for i, (_, where) in enumerate(prepared)]


def final_mask(prob: np.ndarray, card: ModelCard) -> np.ndarray:
    """The finding's mask: thresholded probabilities, largest component, or empty when it
    is smaller than ``segmentation.min_area_fraction`` of the image."""
    from radlens.inference.biometry import largest_component

    assert card.segmentation is not None
    mask = largest_component(prob >= card.threshold)
    if mask.sum() < card.segmentation.min_area_fraction * mask.size:
        return np.zeros_like(mask)
    return mask


def head_measurements(
    mask: np.ndarray, pixel_size_mm: float | None, edge_offset_px: float
) -> tuple[tuple[Measurement, ...], np.ndarray | None, tuple[str, ...]]:
    """HC and GA of a head mask, the ellipse outline, and warnings."""
    if pixel_size_mm is None:
        from radlens.inference.biometry import fit_ellipse

        try:
            outline = fit_ellipse(mask).shrunk(edge_offset_px).points()
        except InferenceError as exc:
            return (), None, (str(exc),)
        return (), outline, (NO_PIXEL_SIZE,)
    try:
        bio = head_biometry(mask, pixel_size_mm, edge_offset_px)
    except InferenceError as exc:
        return (), None, (str(exc),)
    hc = Measurement(
        "head_circumference",
        "Head circumference",
        round(bio.head_circumference_mm, 2),
        "mm",
        method=f"{HC_METHOD}; pixel size {pixel_size_mm:.6g} mm",
    )
    ga_method = f"Hadlock 1984 from HC ({GA_CITATION}); range +/- 2 SD"
    age = bio.gestational_age
    if age.weeks is None or age.two_sd_weeks is None:
        ga = Measurement(
            "gestational_age",
            "Gestational age",
            None,
            "wk",
            method=ga_method,
            note=age.out_of_range,
        )
    else:
        ga = Measurement(
            "gestational_age",
            "Gestational age",
            round(age.weeks, 2),
            "wk",
            low=round(age.weeks - age.two_sd_weeks, 2),
            high=round(age.weeks + age.two_sd_weeks, 2),
            method=ga_method,
        )
    return (hc, ga), bio.ellipse.points(), ()


def segment(
    image: Image,
    card: ModelCard,
    backend: Backend,
    patient: Patient | None = None,
    timings_s: dict[str, float] | None = None,
    pixel_size_mm: float | None = None,
    input_stats: InputStats | None = None,
) -> list[Finding]:
    """The finding of a segmentation model on a 2D image (the first frame of a cine).

    With the card's ``segmentation.ood_inputs`` and its statistics (``input_stats``, from
    :func:`radlens.inference.ood.card_input_stats`), the finding carries the
    input-statistics distance as ``ood_input_score`` and, as a multiple of its threshold,
    ``ood_score``; at 1 or more it is flagged "input unlike training data — low trust"
    (nothing else changes).

    The pixel size is the image's own (Pixel Spacing, ultrasound region calibration) when
    the file states it, else ``pixel_size_mm``; without either no HC is given and the
    finding says so. Probability is the mean foreground probability inside the mask.
    """
    from radlens.inference.predict import frames_of, population_warning

    if card.task is not Task.SEGMENTATION or card.segmentation is None:
        raise ValueError(f"{card.name} is not a segmentation model")
    clock = time.perf_counter()
    frame = frames_of(image)[0]
    model_input, where = prepare_2d(frame.array, card.input, None)
    logits = backend.run(model_input[None])[card.outputs[0]]
    prob = to_source_grid(sigmoid(logits[0, 0]), where)
    mask = final_mask(prob, card)
    if timings_s is not None:
        timings_s["inference"] = timings_s.get("inference", 0.0) + time.perf_counter() - clock
    quality = check_quality(frame.array, False, max(8, min(card.input.size) // 2))
    reading = card_input_ood(card, input_stats, frame.array, model_input)
    flagged = reading.flagged
    found = bool(mask.any())
    population, outside = population_warning(card, patient or Patient())
    warnings: tuple[str, ...] = (population,) if population else ()
    warnings += () if found else (NO_HEAD,)
    measurements: tuple[Measurement, ...] = ()
    outline = None
    if found and card.segmentation.measure is Measure.HEAD_CIRCUMFERENCE:
        spacing = image.geometry.spacing_mm
        size = pixel_size_mm
        if image.geometry.spacing_known:
            size = float(np.sqrt(spacing[-2] * spacing[-1]))
            if abs(spacing[-2] - spacing[-1]) > 0.01 * max(spacing[-2:]):
                warnings += ("pixels are not square: HC uses their geometric mean side",)
        measurements, outline, notes = head_measurements(
            mask, size, card.segmentation.edge_offset_px
        )
        warnings += notes
    if found:
        probability = float(prob[mask].mean())
    else:  # a blob under the minimum area is "not found", whatever its peak
        probability = min(float(prob.max(initial=0.0)), float(np.nextafter(card.threshold, 0)))
    rows, cols = np.nonzero(mask)
    box = (
        Box(float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))
        if found
        else None
    )
    return [
        Finding(
            code=card.finding_code,
            label=card.finding_label,
            probability=min(1.0, max(0.0, probability)),
            threshold=card.threshold,
            model_name=card.name,
            model_version=card.version,
            sop_instance_uid=frame.sop_instance_uid,
            frame=frame.frame,
            box=box,
            ood_score=reading.score,
            ood_flag=bool(quality) or outside or flagged,
            ood_input_score=reading.inputs,
            ood_reasons=reading.reasons,
            warnings=warnings + quality + reading.warnings,
            mask=mask if found else None,
            measurements=measurements,
            outline_px=outline,
            counted=not card.segmentation.triage,
        )
    ]
