"""``radlens deblur MODEL [--data PATH] [--factor 2]``: read inputs far blurrier than every
training image after Wiener deconvolution (:mod:`radlens.training.deblur`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from radlens.cli.analyze import ModelsDir, model_folder
from radlens.cli.render import out
from radlens.models.card import read_card


def deblur_command(
    model: Annotated[str, typer.Argument(help="a model folder, or an installed model name")],
    data: Annotated[
        Path | None,
        typer.Option(help="labelled data (.npz or folder); default: the card's training data"),
    ] = None,
    factor: Annotated[
        float,
        typer.Option(help="deconvolve at this multiple of the blurriest training image's blur"),
    ] = 2.0,
    wiener_k: Annotated[
        float, typer.Option(help="the Wiener filter's noise-to-signal ratio (larger: gentler)")
    ] = 0.01,
    version: Annotated[
        str | None, typer.Option(help="the card's new version (default: unchanged)")
    ] = None,
    models_dir: ModelsDir = None,
) -> None:
    """Fit the blur above which the model reads its input after Wiener deconvolution:
    ``factor`` times the largest over its training images, so none of them is ever
    deconvolved. Weights, calibration and OOD statistics are not touched."""
    from radlens.training.deblur import add_deblur, describe_calibration

    folder = model_folder(model, models_dir)
    source = data or read_card(folder / "card.json").training.data_path()
    before, after, fit = add_deblur(folder, source, factor, wiener_k, version)
    spec = fit.spec
    out.print(
        f"{after.name} {before.version} -> {after.version}: Wiener deconvolution (k "
        f"{spec.wiener_k}) at blur {spec.trigger:.3f} px and above ({spec.factor} x "
        f"{spec.blur_max:.3f}, the largest of {spec.n_train} train images; "
        f"{describe_calibration(spec)}); val reaches "
        f"{fit.val_blur_max:.3f}: {spec.val_deblurred:.1%} of {fit.n_val} val images deblurred"
    )
    if spec.val_deblurred:
        out.print(
            "val figures in the card were measured without deconvolution: run "
            "`radlens calibrate` to refit them"
        )
