"""``radlens calibrate MODEL [--data PATH]``: refit calibration and thresholds, not weights."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from radlens.cli.analyze import Json, ModelsDir, model_folder
from radlens.cli.render import out
from radlens.evaluation.calibration import describe
from radlens.training.calibrate import recalibrate_model


def calibrate_command(
    model: Annotated[str, typer.Argument(help="a model folder, or an installed model name")],
    data: Annotated[
        Path | None,
        typer.Option(help="labelled data (.npz or folder); default: the card's training data"),
    ] = None,
    high_sensitivity: Annotated[
        float | None,
        typer.Option(
            help="val sensitivity of the high_sensitivity threshold; default: the recipe's"
        ),
    ] = None,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads")] = 2,
    as_json: Json = False,
    models_dir: ModelsDir = None,
) -> None:
    """Refit a trained model's calibration (method chosen by cross-validated NLL on val),
    thresholds and val metrics in card.json; the weights are not touched."""
    folder = model_folder(model, models_dir)
    change = recalibrate_model(folder, data, high_sensitivity, threads=threads)
    if as_json:
        report = asdict(change) | {"folder": str(change.folder), "data": str(change.data)}
        out.print_json(json.dumps(report))
        return
    table = Table(title=escape(f"{change.model}: val n={change.n_val} from {change.data}"))
    for column in ("", "before", "after"):
        table.add_column(column)
    table.add_row("calibration", describe(change.before), describe(change.after))
    for key in ("ece_before", "ece_after", "ece_cv", "ece_noise_mean", "ece_noise_p95"):
        old, new = getattr(change.before, key), getattr(change.after, key)
        table.add_row(key, "-" if old is None else f"{old:.4f}", f"{new:.4f}")
    table.add_row(
        "out-of-fold NLL", "", ", ".join(f"{k} {v:.4f}" for k, v in change.after.cv_nll.items())
    )
    for key in sorted(set(change.thresholds_before) | set(change.thresholds_after)):
        old, new = change.thresholds_before.get(key), change.thresholds_after.get(key)
        table.add_row(f"threshold {key}", f"{old}", f"{new}")
    for key in sorted(change.metrics_after):
        old, new = change.metrics_before.get(key), change.metrics_after[key]
        if old != new:
            table.add_row(f"val {key}", f"{old}", f"{new}")
    out.print(table)
    out.print(
        f"high_sensitivity keeps val sensitivity {change.high_sensitivity:.3f} "
        f"({escape(change.high_sensitivity_from)}); weights unchanged"
    )
