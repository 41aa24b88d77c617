"""``radlens denoise MODEL [--data PATH] [--median 5]``: read inputs noisier than every
training image after a median filter (:mod:`radlens.training.denoise`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from radlens.cli.analyze import ModelsDir, model_folder
from radlens.cli.render import out
from radlens.models.card import read_card


def denoise_command(
    model: Annotated[str, typer.Argument(help="a model folder, or an installed model name")],
    data: Annotated[
        Path | None,
        typer.Option(help="labelled data (.npz or folder); default: the card's training data"),
    ] = None,
    median: Annotated[int, typer.Option(help="side of the median filter: 3 or 5 px")] = 5,
    version: Annotated[
        str | None, typer.Option(help="the card's new version (default: unchanged)")
    ] = None,
    models_dir: ModelsDir = None,
) -> None:
    """Fit the noise level and impulse share above which the model reads its input after a
    median filter: the largest over its training images, so none of them is ever filtered.
    Weights, calibration and OOD statistics are not touched."""
    from radlens.training.denoise import add_denoise

    folder = model_folder(model, models_dir)
    source = data or read_card(folder / "card.json").training.data_path()
    before, after, fit = add_denoise(folder, source, median, version)
    spec = fit.spec
    out.print(
        f"{after.name} {before.version} -> {after.version}: {median} x {median} median filter "
        f"above noise {spec.noise_above:.6f} or impulses {spec.impulse_above:.4%} (largest of "
        f"{spec.n_train} train images); val reaches {fit.val_noise_max:.6f} and "
        f"{fit.val_impulse_max:.4%}: {spec.val_filtered:.1%} of {fit.n_val} val images filtered"
    )
    if spec.val_filtered:
        out.print(
            "val figures in the card were measured without the filter: run `radlens calibrate` "
            "to refit them"
        )
