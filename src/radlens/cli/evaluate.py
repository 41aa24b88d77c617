"""``radlens evaluate --model M --data PATH --split val``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from radlens.cli.analyze import Json, ModelsDir
from radlens.cli.render import out
from radlens.errors import ConfigError
from radlens.evaluation.detection import DetectionScores, evaluate_detector
from radlens.evaluation.evaluate import Evaluation, evaluate
from radlens.evaluation.segmentation import evaluate_segmentation
from radlens.inference.backends import OnnxBackend
from radlens.io.box_sets import read_boxes
from radlens.io.datasets import read_labelled
from radlens.io.segmentation_sets import read_segmentation
from radlens.models.card import Task
from radlens.models.registry import discover, get_model, load_model


def evaluate_command(
    model: Annotated[str, typer.Option(help="installed model name, or a model folder")],
    data: Annotated[Path, typer.Option(help="MedMNIST .npz or a labelled image folder")],
    split: Annotated[str, typer.Option(help="train, val or test")] = "val",
    as_json: Json = False,
    models_dir: ModelsDir = None,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads")] = 2,
    int8: Annotated[
        bool, typer.Option("--int8", help="run the INT8 variant (see radlens quantize)")
    ] = False,
) -> None:
    """Measure a model on labelled data: AUC, ACC, ECE and per-class figures; for a
    segmentation model Dice, Hausdorff distance (mm) and the head circumference error; for a
    detector VOC AP at IoU 0.5 and 0.5:0.95 per class and their means (mAP)."""
    folder = Path(model)
    installed = (
        load_model(folder)
        if (folder / "card.json").exists()
        else get_model(model, discover(models_dir, include_disabled=True))
    )
    card = installed.card
    if int8 and card.int8 is None:
        raise ConfigError(f"{card.name} has no INT8 variant; make one with radlens quantize")
    weights = installed.runtime_weights(prefer_int8=int8)
    backend = OnnxBackend(weights, threads=threads)
    result: Evaluation | DetectionScores
    if card.task is Task.SEGMENTATION:
        result, _ = evaluate_segmentation(card, backend, read_segmentation(data, split))
    elif card.task is Task.DETECTION:
        result = evaluate_detector(card, backend, read_boxes(data, split, card.labels))
    else:
        result = evaluate(card, backend, read_labelled(data, split, card.labels))
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "model": card.name,
                    "version": card.version,
                    "data": str(data),
                    "split": split,
                    "weights": weights.name,
                    "n": result.n,
                    "metrics": result.metrics,
                    "per_class": result.per_class,
                    "card_metrics": card.metrics.get(split, {}),
                },
                default=lambda v: None if isinstance(v, float) and math.isnan(v) else v,
            )
        )
        return
    variant = " int8" if int8 else ""
    table = Table(
        title=escape(f"{card.name} {card.version}{variant} on {data} [{split}], n={result.n}")
    )
    table.add_column("metric")
    table.add_column("measured")
    table.add_column("card")
    for k, v in result.metrics.items():
        in_card = card.metrics.get(split, {}).get(k)
        table.add_row(k, f"{v:.4f}", "-" if in_card is None else f"{in_card:.4f}")
    kind = "label" if card.task is Task.MULTILABEL else "class"
    for name, figures in result.per_class.items():
        row = ", ".join(f"{k} {v:.0f}" if k == "n" else f"{k} {v:.3f}" for k, v in figures.items())
        table.add_row(f"{kind} {name}", row, "")
    out.print(table)
