"""``radlens train RECIPE -o OUT``: needs the ``radlens[train]`` extra (torch)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from radlens.cli.render import out
from radlens.errors import ConfigError


def train_command(
    recipe: Annotated[Path, typer.Argument(help="recipes/<name>.toml")],
    output: Annotated[Path, typer.Option("-o", "--output", help="model folder to write")],
    data: Annotated[Path | None, typer.Option(help="override the recipe's data path")] = None,
    epochs: Annotated[int | None, typer.Option(help="override schedule.epochs")] = None,
    seed: Annotated[int | None, typer.Option(help="override the seed")] = None,
) -> None:
    """Train, calibrate and export a model (ONNX + card.json + train.log)."""
    try:
        from radlens.training.recipe import read_recipe
        from radlens.training.train import train
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"training needs torch and monai: pip install 'radlens[train]' ({exc.name} is missing)"
        ) from exc
    overrides: dict[str, object] = {}
    if epochs is not None:
        overrides["schedule.epochs"] = epochs
    if seed is not None:
        overrides["seed"] = seed
    command = shlex.join(["radlens", *sys.argv[1:]])
    card, evaluation = train(read_recipe(recipe, overrides), output, data, command)
    out.print(
        f"{card.name} {card.version} -> {output}: val "
        + ", ".join(f"{k} {v:.4f}" for k, v in evaluation.metrics.items())
    )
