"""``predict``: one image + one model card + a backend -> typed findings.

A binary, multi-class or ordinal model says one thing per analyzed frame (or volume); a
multi-label model says yes or no to each of its labels, so it gives one finding per label,
each with its own calibrated probability ``sigmoid(logit / T)``, the card's operating
threshold, and a heatmap from that label's activation-map channel. Probabilities come from
the card's calibration (:meth:`radlens.models.card.Calibration.probabilities`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from radlens.domain.findings import Box, Finding
from radlens.domain.imaging import Image, ImageLayout, Patient
from radlens.errors import IncompatibleInputError
from radlens.explain.heatmaps import cam_box, cam_to_heatmap
from radlens.inference.backends import Backend
from radlens.inference.ood import LOW_TRUST, OodStats, read_ood
from radlens.inference.preprocess import Placement, prepare_2d, prepare_3d
from radlens.inference.quality import check_quality
from radlens.inference.restore import Deblurred, Denoised
from radlens.models.card import ModelCard, Task

HEATMAP_MAX_SIDE = 512


@dataclass(frozen=True)
class Frame:
    """One 2D frame of an image to analyze, with the instance it came from."""

    array: np.ndarray
    sop_instance_uid: str
    frame: int


def frames_of(image: Image, max_frames: int = 1) -> list[Frame]:
    """The 2D frames a 2D model reads: the image itself, or the first frames of a cine."""
    uid = image.source_uids[0] if image.source_uids else ""
    if image.layout.is_multiframe:
        return [Frame(image.array[i], uid, i) for i in range(min(max_frames, image.n_frames))]
    return [Frame(image.array, uid, 0)]


def population_warning(card: ModelCard, patient: Patient) -> tuple[str, bool]:
    """A warning when the patient is outside the card's training population.

    Returns the warning (or "") and whether the patient is known to be outside it.
    """
    pop = card.applies_to.population
    if pop.age_years_min is None and pop.age_years_max is None:
        return "", False
    if patient.age_years is None:
        return f"patient age not stated; model trained on {pop.description}", False
    age = patient.age_years
    low = pop.age_years_min if pop.age_years_min is not None else -np.inf
    high = pop.age_years_max if pop.age_years_max is not None else np.inf
    if not low <= age < high + 1:
        return (
            f"patient age {age:.0f} y is outside the training population ({pop.description})"
        ), True
    return "", False


def label_code(label: str) -> str:
    """A multi-label finding's code: ``"Pleural Thickening"`` -> ``"pleural_thickening"``."""
    return label.lower().replace(" ", "_")


def _model_input(
    image: Image, card: ModelCard, restore: bool = True
) -> tuple[list[Frame], np.ndarray, list[Placement]]:
    """The frames a model reads from ``image``, their input batch and (2D) placements
    (``restore``: with the card's denoising, :func:`radlens.inference.preprocess.prepare_2d`).

    Raises:
        IncompatibleInputError: the image cannot be read by this model (2D vs 3D, too small).
    """
    if card.input.dims == 3:
        if image.layout is not ImageLayout.ZYX:
            raise IncompatibleInputError(
                None, f"model {card.name} reads volumes, got a {image.layout.value} image"
            )
        uid = image.source_uids[0] if image.source_uids else ""
        return [Frame(image.array, uid, 0)], prepare_3d(image.array, card.input)[None], []
    frames = frames_of(image)
    prepared = [prepare_2d(f.array, card.input, image.window, restore) for f in frames]
    return frames, np.stack([p[0] for p in prepared]), [p[1] for p in prepared]


def _finding_indices(card: ModelCard, probs: np.ndarray) -> list[tuple[int, str, str]]:
    """The classes findings report: the positive class (binary), the top class
    (multi-class), the grade the card's ``grade_rule`` reads (ordinal), or every label
    (multi-label)."""
    if card.task is Task.MULTILABEL:
        return [(k, label_code(label), label) for k, label in enumerate(card.labels)]
    if card.task is Task.BINARY:
        return [(card.positive_index, card.finding_code, card.finding_label)]
    k = int(card.decide(probs))
    return [(k, card.labels[k].lower(), card.labels[k])]


def predict(
    image: Image,
    card: ModelCard,
    backend: Backend,
    patient: Patient | None = None,
    timings_s: dict[str, float] | None = None,
    ood_stats: OodStats | None = None,
) -> list[Finding]:
    """Run one model on an image and return its findings.

    With the card's ``ood`` spec and its statistics (``ood_stats``), every finding carries
    the out-of-distribution score (:func:`radlens.inference.ood.read_ood`: the model's
    features and, when the card has them, statistics of the input image, combined) as a
    multiple of its threshold; at 1 or more the finding is flagged and warns "input unlike
    training data — low trust". Nothing else changes: a flagged probability is reported as
    computed, never lowered or hidden. With the card's ``denoise``, an input noisier than
    every training image is read after a median filter, and with its ``deblur`` one far
    blurrier after Wiener deconvolution (:mod:`radlens.inference.restore`): its findings say
    so and are flagged, and their OOD score is read from the input as it came.

    A 2D model gives one finding per analyzed frame; a 3D model one finding per volume,
    whose ``frame`` is the slice where its activation map peaks (the heatmap and box are
    drawn on that slice). A multi-label model gives one such finding per label.

    Example:
        >>> findings = predict(image, model.card, OnnxBackend(model.weights))  # doctest: +SKIP
        >>> findings[0].code, round(findings[0].probability, 2)  # doctest: +SKIP
        ('pneumonia', 0.97)
    """
    clock = time.perf_counter()
    frames, batch, placements = _model_input(image, card)
    prepared_at = time.perf_counter()
    outputs = backend.run(batch)
    if timings_s is not None:
        timings_s["preprocess"] = timings_s.get("preprocess", 0.0) + prepared_at - clock
        timings_s["inference"] = timings_s.get("inference", 0.0) + time.perf_counter() - prepared_at
    logits = outputs[card.outputs[0]]
    cams = outputs.get(card.outputs[1])
    probs = card.calibration.probabilities(logits, card.task)
    warning, outside = population_warning(card, patient or Patient())
    warnings = (warning,) if warning else ()
    restored = [p.restorations for p in placements] or [()] * len(frames)
    ood_batch, ood_outputs = batch, outputs
    if any(restored) and card.ood is not None and ood_stats is not None:
        # The out-of-distribution score reads the input as it came, not as restored.
        _, ood_batch, _ = _model_input(image, card, restore=False)
        ood_outputs = backend.run(ood_batch)
    ood = read_ood(
        card, ood_stats, _features(card, ood_outputs), [f.array for f in frames], ood_batch
    )
    is_mask = card.applies_to.modalities == ("SEG",)
    min_side = max(8, min(card.input.size) // 2)
    quality = [check_quality(f.array, is_mask, min_side) for f in frames]
    findings = []
    size = (card.input.size[-2], card.input.size[-1])
    threshold = card.threshold if card.task in (Task.BINARY, Task.MULTILABEL) else 0.0
    for i, frame in enumerate(frames):
        for k, code, label in _finding_indices(card, probs[i]):
            heatmap, box, frame_index = _localize(
                cams, i, k, frame.frame, card.input.dims, image.array.shape, size, placements
            )
            probability = float(probs[i, k])
            findings.append(
                Finding(
                    code=code,
                    label=label,
                    probability=probability,
                    threshold=threshold,
                    model_name=card.name,
                    model_version=card.version,
                    sop_instance_uid=frame.sop_instance_uid,
                    frame=frame_index,
                    heatmap=heatmap,
                    box=box if probability >= threshold else None,
                    grade=k if card.task is Task.ORDINAL else None,
                    grade_label=card.labels[k] if card.task is Task.ORDINAL else "",
                    grade_probabilities=(
                        tuple(
                            (name, round(float(p), 6))
                            for name, p in zip(card.labels, probs[i], strict=True)
                        )
                        if card.task is Task.ORDINAL
                        else ()
                    ),
                    counted=card.task is Task.ORDINAL
                    and (card.triage_min_grade is None or k < card.triage_min_grade),
                    ood_score=ood[i].score,
                    ood_flag=outside or ood[i].flagged or bool(quality[i]) or bool(restored[i]),
                    ood_feature_score=ood[i].feature,
                    ood_input_score=ood[i].inputs,
                    ood_reasons=ood[i].reasons,
                    warnings=warnings
                    + _indeterminate(card, probability)
                    + quality[i]
                    + _restore_warnings(restored[i], ood[i].warnings)
                    + ood[i].warnings,
                )
            )
    return findings


def _features(card: ModelCard, outputs: dict[str, np.ndarray]) -> np.ndarray | None:
    return None if card.ood is None else outputs.get(card.ood.output)


def _restore_warnings(
    restored: tuple[Denoised | Deblurred, ...], ood_warnings: tuple[str, ...]
) -> tuple[str, ...]:
    """What denoising or deblurring did and, as for any flagged finding, the low-trust
    warning."""
    if not restored:
        return ()
    said = tuple(r.warning() for r in restored)
    return said + (() if LOW_TRUST in ood_warnings else (LOW_TRUST,))


INDETERMINATE = "indeterminate: probability too close to the operating threshold to call"


def _indeterminate(card: ModelCard, probability: float) -> tuple[str, ...]:
    """A warning when a binary probability falls in the card's abstain band."""
    low, high = card.thresholds.get("abstain_low"), card.thresholds.get("abstain_high")
    if card.task is not Task.BINARY or low is None or high is None or low >= high:
        return ()
    return (INDETERMINATE,) if low <= probability <= high else ()


def _localize(
    cams: np.ndarray | None,
    i: int,
    k: int,
    frame_index: int,
    dims: int,
    image_shape: tuple[int, ...],
    size: tuple[int, int],
    placements: list[Placement],
) -> tuple[np.ndarray | None, Box | None, int]:
    """Heatmap, box and frame of item ``i``'s class ``k`` from its CAM channel, if any."""
    if cams is None:
        return None, None, frame_index
    cam = cams[i, k]
    if dims == 3:
        frame_index, cam, where = _peak_slice(cam, image_shape, size)
    else:
        where = placements[i]
    return (
        cam_to_heatmap(cam, size, where, HEATMAP_MAX_SIDE),
        cam_box(cam, size, where),
        frame_index,
    )


def _peak_slice(
    cam: np.ndarray, volume_shape: tuple[int, ...], input_size: tuple[int, int]
) -> tuple[int, np.ndarray, Placement]:
    """The source slice where a 3D CAM peaks, that CAM slice, and its 2D placement."""
    depth = cam.shape[0]
    peak = int(np.unravel_index(int(np.argmax(cam)), cam.shape)[0])
    slices, rows, cols = volume_shape
    z = min(slices - 1, max(0, round((peak + 0.5) * slices / depth - 0.5)))
    where = Placement((rows, cols), rows / input_size[0], cols / input_size[1])
    return z, cam[peak], where


def ood_score(image: Image, card: ModelCard, backend: Backend, stats: OodStats) -> float | None:
    """The model's OOD score of an image's first frame (or volume), as a multiple of its
    threshold (under 1: like the training data); None if the model cannot read it.

    Used on series no model was routed to: an image that scores as in-distribution for a
    model whose routing rule it failed has DICOM tags that probably do not describe it.
    """
    if card.ood is None:
        return None
    try:
        frames, batch, _ = _model_input(image, card, restore=False)
    except IncompatibleInputError:
        return None
    outputs = backend.run(batch[:1])
    return read_ood(card, stats, _features(card, outputs), [frames[0].array], batch[:1])[0].score
