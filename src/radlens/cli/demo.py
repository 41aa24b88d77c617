"""``radlens demo``: analyze the real pydicom-data samples (what ``make run`` does)."""

from __future__ import annotations

from pathlib import Path

import typer

from radlens.analyze import demo_inputs
from radlens.cli.analyze import Json, ModelsDir, Output, Quiet, Verbose, run_analysis
from radlens.cli.main import configure_logging


def demo_command(
    output: Output = Path("radlens-demo"),
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    models_dir: ModelsDir = None,
) -> None:
    """Analyze real CR chest, CR extremity, CT, MR, US and NM samples from pydicom-data."""
    configure_logging(verbose, quiet)
    run = run_analysis(demo_inputs(), output, as_json, quiet, models_dir, 1)
    raise typer.Exit(run.exit_code)
