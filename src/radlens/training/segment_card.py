"""The card of a trained segmentation model: fitted on train, measured on val through
ONNX Runtime at the source resolution (the code ``radlens evaluate`` runs).

Kept apart from the training loop so it can be rerun on an exported ``model.onnx``
(``finish_card``) without training again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np

from radlens.evaluation.evaluate import Evaluation
from radlens.evaluation.segmentation import evaluate_segmentation
from radlens.inference.backends import OnnxBackend
from radlens.inference.biometry import fit_ellipse
from radlens.inference.input_stats import statistic_set_for, statistics_of
from radlens.inference.ood import fit_input_stats, input_scores, save_input_stats
from radlens.inference.preprocess import prepare_2d
from radlens.io.segmentation_sets import SegmentedImages, read_segmentation
from radlens.models.card import (
    Calibration,
    InputOodSpec,
    Measure,
    ModelCard,
    SegmentationSpec,
    Task,
    read_card,
    write_card,
)
from radlens.models.registry import sha256_of
from radlens.training.recipe import Recipe


def fit_edge_offset(data: SegmentedImages) -> float:
    """The median offset (source pixels, per semi-axis) between the ellipse fitted to each
    reference mask's edge and the ellipse whose perimeter is the reference HC.

    The HC18 masks are filled annotation ellipses including the drawn line, so their edge
    lies about half a line width outside the annotated ellipse; the offset is found per
    image by bisection and its median kept (fitted on train only).
    """
    offsets = []
    for mask, px, reference in zip(data.masks, data.pixel_size_mm, data.reference_mm, strict=True):
        if not (np.isfinite(px) and np.isfinite(reference)) or not mask.any():
            continue
        ellipse = fit_ellipse(mask)
        low, high = -10.0, 10.0
        for _ in range(40):
            mid = (low + high) / 2
            if ellipse.shrunk(mid).perimeter_px * px > reference:
                low = mid
            else:
                high = mid
        offsets.append((low + high) / 2)
    return round(float(np.median(offsets)), 4) if offsets else 0.0


INPUT_STATS_FILE = "ood_inputs.npz"
FLAG_RATE = 0.05


class HasImages(Protocol):
    """A data set with its images as decoded: segmentation sets, box sets, labelled sets."""

    @property
    def images(self) -> Sequence[np.ndarray]: ...


def fit_input_ood(
    card: ModelCard,
    out_dir: Path,
    train: HasImages,
    val: HasImages,
    flag_rate: float = FLAG_RATE,
) -> InputOodSpec:
    """Fit the input-statistics OOD score of a 2D model without a features output
    (segmentation, detection) on its train images and write ``ood_inputs.npz`` into
    ``out_dir``; the threshold flags ``flag_rate`` of val images (as ``radlens ood`` does
    for classifiers). Only the images are read, each as the model's preprocessing sees it.

    Example:
        >>> train, val = read_boxes(data, "train"), read_boxes(data, "val")  # doctest: +SKIP
        >>> spec = fit_input_ood(card, folder, train, val)  # doctest: +SKIP
        >>> spec.stats_file, spec.val_flag_rate  # doctest: +SKIP
        ('ood_inputs.npz', 0.046)
    """
    statistics = statistic_set_for(card)
    if statistics is None or card.input.dims != 2:
        raise ValueError(f"{card.name}: input OOD statistics are fitted for 2D models only")
    if not 0 < flag_rate < 1:
        raise ValueError(f"flag_rate must lie in (0, 1), got {flag_rate}")

    def values(data: HasImages) -> np.ndarray:
        return np.stack(
            [
                statistics_of(statistics, image, prepare_2d(image, card.input)[0], card.input)
                for image in data.images
            ]
        )

    fitted = fit_input_stats(values(train), statistics.kind)
    path = out_dir / INPUT_STATS_FILE
    save_input_stats(fitted, path)
    scores = input_scores(values(val), fitted)
    threshold = float(np.quantile(scores, 1 - flag_rate))
    return InputOodSpec(
        statistics=statistics.kind,
        stats_file=INPUT_STATS_FILE,
        sha256=sha256_of(path),
        threshold=round(threshold, 6),
        median=round(float(np.median(scores)), 6),
        val_flag_rate=round(float(np.mean(scores >= round(threshold, 6))), 6),
    )


def finish_card(
    recipe: Recipe,
    out_dir: Path,
    source: Path,
    command: str,
    minutes: float,
    log: logging.Logger,
) -> tuple[ModelCard, Evaluation]:
    """Fit the edge offset on train, measure val, write ``card.json``."""
    from radlens.training.train import training_record

    measure = Measure(recipe.measure)
    train_set = read_segmentation(source, "train", seed=recipe.seed)
    val_set = read_segmentation(source, "val", seed=recipe.seed)
    offset = fit_edge_offset(train_set) if measure is Measure.HEAD_CIRCUMFERENCE else 0.0
    log.info("edge offset of the reference masks (train median): %.4f px", offset)
    onnx_path = out_dir / "model.onnx"
    card = ModelCard(
        name=recipe.name,
        version=recipe.version,
        task=Task.SEGMENTATION,
        labels=recipe.labels,
        finding_code=recipe.finding_code,
        finding_label=recipe.finding_label,
        input=recipe.input,
        applies_to=recipe.applies_to,
        calibration=Calibration(),
        thresholds={"operating": 0.5},
        metrics={},
        training=training_record(recipe, command, len(train_set), len(val_set), minutes),
        intended_use=recipe.intended_use,
        limitations=recipe.limitations,
        sha256=sha256_of(onnx_path),
        outputs=("mask_logits",),
        enabled_by_default=recipe.commercial_use and recipe.enabled_by_default is not False,
        segmentation=SegmentationSpec(measure=measure, edge_offset_px=offset),
    )
    OnnxBackend.forget(onnx_path)
    backend = OnnxBackend(onnx_path, threads=recipe.schedule.threads)
    evaluation, _ = evaluate_segmentation(card, backend, val_set)
    ood_inputs = fit_input_ood(card, out_dir, train_set, val_set)
    log.info(
        "input-statistics OOD score: threshold %.3f flags %.1f%% of val",
        ood_inputs.threshold,
        100 * ood_inputs.val_flag_rate,
    )
    assert card.segmentation is not None
    card = replace(
        card,
        metrics={"val": evaluation.metrics},
        segmentation=replace(card.segmentation, ood_inputs=ood_inputs),
    )
    write_card(card, out_dir / "card.json")
    log.info("val metrics (onnxruntime, source resolution): %s", evaluation.metrics)
    return read_card(out_dir / "card.json"), evaluation
