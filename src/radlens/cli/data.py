"""``radlens data prepare NAME SOURCE -o OUT``: a dataset's view in a layout radlens reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from radlens.cli.render import out

data_app = typer.Typer(help="Prepare published datasets for training.", no_args_is_help=True)


def prepare_command(
    name: Annotated[str, typer.Argument(help="the dataset: fracatlas")],
    source: Annotated[Path, typer.Argument(help="the dataset's folder as published")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the view's folder")],
    seed: Annotated[int, typer.Option(help="seeds any split the view adds")] = 0,
) -> None:
    """Write labels.csv and boxes.csv (images linked, not copied) with a recorded split."""
    from radlens.io.prepare import prepare

    view = prepare(name, source, output, seed)
    for split, counts in view.counts.items():
        line = ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))
        out.print(f"{split}: {escape(line)}")
    out.print(f"written to {escape(str(view.folder))}")
