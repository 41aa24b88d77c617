"""``radlens train``: needs the ``radlens[train]`` extra (torch).

Two ways to say what to train:

* ``radlens train recipes/NAME.toml -o OUT`` — a recipe file;
* ``radlens train --dataset NAME [--size N] [--arch A] [--seed S] -o OUT`` — the recipe in
  ``recipes/`` made for that dataset, or one inferred from the data when there is none
  (``--task detection``: a box detector inferred from a box set; ``--task segmentation``:
  a BasicUNet inferred from a mask set, ``images/`` + ``masks/`` + ``labels.csv``).
"""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from radlens.cli.render import out
from radlens.errors import ConfigError


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``section.key=value`` pairs with TOML values (``net.widths=[16,32,64,128]``)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected section.key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word is a string
        overrides[key.strip()] = value
    return overrides


def _command_words(
    recipe: Path | None,
    dataset: str | None,
    size: int | None,
    arch: str | None,
    data: Path | None,
    epochs: int | None,
    seed: int | None,
    sets: list[str],
    output: Path,
    task: str | None = None,
) -> list[str]:
    """The command line that reproduces this run, for the card."""
    words = ["radlens", "train"]
    words += [str(recipe)] if recipe is not None else ["--dataset", str(dataset)]
    for flag, value in (
        ("--size", size),
        ("--arch", arch),
        ("--data", data),
        ("--epochs", epochs),
        ("--seed", seed),
        ("--task", task),
    ):
        if value is not None:
            words += [flag, str(value)]
    for pair in sets:
        words += ["--set", pair]
    return [*words, "-o", str(output)]


def _flag_overrides(
    arch: str | None, epochs: int | None, seed: int | None, task: str | None
) -> dict[str, Any]:
    """The recipe values the short flags set (``--set`` goes after them)."""
    named = {"net.arch": arch, "schedule.epochs": epochs, "seed": seed, "task": task}
    return {key: value for key, value in named.items() if value is not None}


def train_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="model folder to write")],
    recipe: Annotated[
        Path | None, typer.Argument(help="recipes/<name>.toml (or use --dataset)")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="dataset name, e.g. breastmnist or cxr_pneumonia")
    ] = None,
    size: Annotated[
        int | None, typer.Option(help="input side in pixels (28, 64, 128, 224)")
    ] = None,
    arch: Annotated[
        str | None, typer.Option(help="resnet-tiny, resnet-small, resnet10 or resnet18")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="MedMNIST .npz or labelled folder")] = None,
    epochs: Annotated[int | None, typer.Option(help="override schedule.epochs")] = None,
    seed: Annotated[int | None, typer.Option(help="override the seed")] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="override the task; with --dataset and no recipe, 'detection' infers a "
            "detector recipe from a box set (Pascal VOC or boxes.csv), 'segmentation' a "
            "segmentation recipe from a mask set (images/, masks/, labels.csv)"
        ),
    ] = None,
    recipes: Annotated[Path, typer.Option(help="where --dataset looks for recipes")] = Path(
        "recipes"
    ),
    sets: Annotated[
        list[str] | None, typer.Option("--set", help="override a recipe value: section.key=value")
    ] = None,
    members: Annotated[
        list[Path] | None,
        typer.Option(
            "--member",
            help="segmentation ensembles (schedule.member_sizes): an already trained member's "
            "model.onnx, in member_sizes order, used instead of training it",
        ),
    ] = None,
) -> None:
    """Train, calibrate and export a model (ONNX + card.json + train.log)."""
    try:
        from radlens.training.recipe import (
            find_dataset,
            infer_recipe,
            read_recipe,
            recipe_for_dataset,
            recipe_from_dict,
        )
        from radlens.training.train import train
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"training needs torch and monai: pip install 'radlens[train]' ({exc.name} is missing)"
        ) from exc
    if (recipe is None) == (dataset is None):
        raise ConfigError("give either a recipe file or --dataset NAME")
    overrides: dict[str, Any] = {}
    if dataset is not None:
        path, overrides = recipe_for_dataset(dataset, size, recipes, data)
    else:
        path = recipe
        if size is not None:
            raise ConfigError("--size goes with --dataset; in a recipe set input.size")
        if data is not None:
            overrides["data"] = str(data)
    overrides.update(_flag_overrides(arch, epochs, seed, task))
    overrides.update(parse_sets(sets or []))
    if path is not None:
        chosen = read_recipe(path, overrides)
    else:
        assert dataset is not None
        source = data or find_dataset(dataset, size)
        if task == "detection":
            from radlens.training.detection import infer_detection_recipe

            inferred = infer_detection_recipe(source, dataset, size)
        elif task == "segmentation":
            from radlens.training.segment import infer_segmentation_recipe

            inferred = infer_segmentation_recipe(source, dataset, size)
        else:
            inferred = infer_recipe(source, dataset, size)
        chosen = recipe_from_dict(inferred, f"inferred from {source}", overrides)
    words = _command_words(
        recipe, dataset, size, arch, data, epochs, seed, sets or [], output, task
    )
    for member in members or []:
        words[-2:-2] = ["--member", str(member)]
    card, evaluation = train(chosen, output, Path(chosen.data), shlex.join(words), members)
    out.print(
        f"{card.name} {card.version} -> {output}: val "
        + ", ".join(f"{k} {v:.4f}" for k, v in evaluation.metrics.items())
    )
