"""``radlens half MODEL --data PATH -o OUT --version V``: a float16 version of a classifier.

Needs the ``onnx`` package (``radlens[train]``).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from radlens.cli.analyze import ModelsDir, model_folder
from radlens.cli.render import out
from radlens.errors import ConfigError


def half_command(
    model: Annotated[str, typer.Argument(help="installed model name, or a model folder")],
    data: Annotated[Path, typer.Option(help="the model's labelled data (.npz or folder)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="the new model folder")],
    version: Annotated[str, typer.Option(help="the new version's number")],
    models_dir: ModelsDir = None,
) -> None:
    """Store a trained classifier's weights as float16 (about half the bytes) as a new
    version: checked against the float32 outputs, then recalibrated and re-measured on val,
    and its OOD score refitted; training is not rerun."""
    try:
        from radlens.training.half_weights import halve_model
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"radlens half needs the onnx package of the train extra: pip install onnx "
            f"({exc.name} is missing)"
        ) from exc
    folder = model_folder(model, models_dir)
    command = " ".join(
        ["radlens half", shlex.quote(model), "--data", shlex.quote(str(data))]
        + ["-o", shlex.quote(str(output)), "--version", shlex.quote(version)]
    )
    made = halve_model(folder, data, output, version, command)
    before, after = made.metrics_before, made.metrics_after
    figures = ", ".join(
        f"{k} {before[k]:.4f} -> {after[k]:.4f}" for k in ("auc", "acc", "ece") if k in before
    )
    out.print(
        f"{made.model} {made.version} -> {made.folder}: {made.report.tensors} weight tensors as "
        f"float16, {made.report.bytes_before / 1e6:.2f} -> {made.report.bytes_after / 1e6:.2f} "
        f"MB; val {figures}",
        soft_wrap=True,
    )
