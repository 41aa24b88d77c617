"""``radlens ood MODEL --data PATH``: add the out-of-distribution score to a model folder.

A classifier gets both scores (its features and its input statistics), and so does a detector
whose graph has a ``features`` output (a detector on a ResNet trunk); a segmenter or a
detector without one, the input-statistics score alone (refitted here, e.g. with a newer
statistic set; ``radlens train`` fits it first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from radlens.cli.analyze import ModelsDir, model_folder
from radlens.cli.render import out
from radlens.errors import ConfigError
from radlens.models.card import FEATURES_OUTPUT, Task, read_card


def ood_command(
    model: Annotated[str, typer.Argument(help="installed model name, or a model folder")],
    data: Annotated[Path, typer.Option(help="the model's training data (.npz or folder)")],
    flag_rate: Annotated[
        float, typer.Option(help="share of in-distribution val images to flag")
    ] = 0.05,
    input_stats: Annotated[
        bool,
        typer.Option(
            "--input-stats/--no-input-stats",
            help="also fit the input-statistics score and decide on both combined",
        ),
    ] = True,
    models_dir: ModelsDir = None,
) -> None:
    """Fit the OOD scores (Mahalanobis on the model's features and on statistics of its
    input images) and the decision threshold on val; for a detector or a segmenter, the
    input-statistics score alone (data: its box set or segmentation set)."""
    folder = model_folder(model, models_dir)
    card = read_card(folder / "card.json")
    if card.task is Task.DETECTION and FEATURES_OUTPUT in card.outputs:
        if not input_stats:
            raise ConfigError(
                "a detector's OOD decision uses its input statistics: drop --no-input-stats"
            )
        from radlens.training.ood import refit_detector_ood

        spec = refit_detector_ood(folder, data, flag_rate=flag_rate)
        rate = spec.inputs.val_flag_rate if spec.inputs else spec.val_flag_rate
        out.print(
            f"{card.name}: features and input statistics "
            f"({spec.inputs.statistics if spec.inputs else 'none'}); flags {rate:.1%} of val "
            f"(feature score alone: threshold {spec.threshold:.3f})"
        )
        return
    if card.task in (Task.DETECTION, Task.SEGMENTATION):
        if not input_stats:
            raise ConfigError(
                "a detector's or segmenter's only OOD score is its input statistics: drop "
                "--no-input-stats"
            )
        from radlens.training.input_ood import fit_input_only_ood

        found = fit_input_only_ood(folder, data, flag_rate=flag_rate)
        out.print(
            f"{found.model}: input statistics ({found.statistics}) from {found.n_train} train "
            f"images; threshold {found.threshold:.3f} flags {found.val_flag_rate:.1%} of "
            f"{found.n_val} val images"
        )
        return
    try:
        from radlens.training.ood import fit_ood
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"radlens ood needs the onnx package: pip install 'radlens[train]' ({exc.name})"
        ) from exc
    report = fit_ood(folder, data, flag_rate=flag_rate, input_statistics=input_stats)
    inputs = (
        f", {report.n_statistics} input statistics ({report.input_statistics})"
        if report.input_statistics
        else ""
    )
    out.print(
        f"{report.model}: {report.feature_dim} features{inputs} from {report.n_train} train "
        f"images; flags {report.val_flag_rate:.1%} of {report.n_val} val images "
        f"(feature score alone: threshold {report.threshold:.3f}, "
        f"{report.feature_val_flag_rate:.1%})"
    )
