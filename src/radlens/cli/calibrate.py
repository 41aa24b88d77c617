"""``radlens calibrate MODEL [--data PATH]``: refit calibration and thresholds, not weights
(a detector: the score a box needs to be reported)."""

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
from radlens.models.card import Calibration, Task, read_card
from radlens.training.calibrate import (
    OperatingChange,
    Refit,
    pooled_words,
    recalibrate_model,
    refit_operating_score,
)


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
    version: Annotated[
        str | None, typer.Option(help="the card's new version (default: unchanged)")
    ] = None,
    cross_fitted: Annotated[
        Path | None,
        typer.Option(
            help="an .npz of the recipe's cross-fitted train logits and labels to pool with "
            "val (bench_crossfit.py --save-logits); kept beside the card"
        ),
    ] = None,
    val_only: Annotated[
        bool, typer.Option(help="fit on val alone, dropping the card's cross-fitted items")
    ] = False,
    choose_only: Annotated[
        bool,
        typer.Option(
            help="the cross-fitted items (--cross-fitted, or the card's) choose the method "
            "only; it is fitted on val alone"
        ),
    ] = False,
    as_json: Json = False,
    models_dir: ModelsDir = None,
) -> None:
    """Refit a trained model's calibration (method chosen by cross-validated NLL on val,
    or on val pooled with cross-fitted train items), thresholds and val metrics in card.json;
    the weights are not touched. For a detector: the score a box needs to be reported (the
    best val F1 of boxes at IoU 0.5)."""
    folder = model_folder(model, models_dir)
    if read_card(folder / "card.json").task is Task.DETECTION:
        refit = refit_operating_score(folder, data, threads=threads, version=version)
        _show_operating(refit, as_json)
        return
    change = recalibrate_model(
        folder,
        data,
        high_sensitivity,
        threads=threads,
        version=version,
        cross_fitted=cross_fitted,
        val_only=val_only,
        choose_only=choose_only,
    )
    table = _table_or_json(change, as_json)
    if table is None:
        return
    table.add_row("calibration", describe(change.before), describe(change.after))
    table.add_row("fitted on", _fitted_on(change.before), _fitted_on(change.after))
    for key in ("ece_before", "ece_after", "ece_cv", "ece_noise_mean", "ece_noise_p95"):
        old, new = getattr(change.before, key), getattr(change.after, key)
        table.add_row(key, "-" if old is None else f"{old:.4f}", f"{new:.4f}")
    table.add_row(
        "out-of-fold NLL", "", ", ".join(f"{k} {v:.4f}" for k, v in change.after.cv_nll.items())
    )
    for key in sorted(set(change.thresholds_before) | set(change.thresholds_after)):
        old, new = change.thresholds_before.get(key), change.thresholds_after.get(key)
        table.add_row(f"threshold {key}", f"{old}", f"{new}")
    _metric_rows(table, change.metrics_before, change.metrics_after)
    out.print(table)
    out.print(
        f"high_sensitivity keeps val sensitivity {change.high_sensitivity:.3f} "
        f"({escape(change.high_sensitivity_from)}); weights unchanged"
    )


def _fitted_on(calibration: Calibration) -> str:
    return "val" + pooled_words(calibration.cross_fitted)


def _show_operating(change: OperatingChange, as_json: bool) -> None:
    table = _table_or_json(change, as_json)
    if table is None:
        return
    table.add_row("threshold operating", f"{change.before:g}", f"{change.point.score:.6g}")
    _metric_rows(table, change.metrics_before, change.metrics_after)
    out.print(table)
    out.print(escape(change.point.describe()) + "; weights unchanged")


def _table_or_json(change: Refit, as_json: bool) -> Table | None:
    """With ``--json``, print the whole change and return None; else its before/after table."""
    if as_json:
        report = asdict(change) | {"folder": str(change.folder), "data": str(change.data)}
        out.print_json(json.dumps(report))
        return None
    table = Table(title=escape(f"{change.model}: val n={change.n_val} from {change.data}"))
    for column in ("", "before", "after"):
        table.add_column(column)
    return table


def _metric_rows(table: Table, before: dict[str, float], after: dict[str, float]) -> None:
    """The val metrics that changed (or are new)."""
    for key in sorted(after):
        if before.get(key) != after[key]:
            table.add_row(f"val {key}", f"{before.get(key, '-')}", f"{after[key]}")
