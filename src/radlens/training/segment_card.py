"""The card of a trained segmentation model: fitted on train, measured on val through
ONNX Runtime at the source resolution (the code ``radlens evaluate`` runs).

Kept apart from the training loop so it can be rerun on an exported ``model.onnx``
(``finish_card``) without training again.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

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


def fit_input_ood(
    card: ModelCard, out_dir: Path, train: SegmentedImages, val: SegmentedImages
) -> InputOodSpec:
    """Fit the input-statistics OOD score on train images; its threshold flags
    ``FLAG_RATE`` of val images (as ``radlens ood`` does for classifiers)."""
    statistics = statistic_set_for(card)
    assert statistics is not None  # a 2D model

    def values(data: SegmentedImages) -> np.ndarray:
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
    threshold = float(np.quantile(scores, 1 - FLAG_RATE))
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
