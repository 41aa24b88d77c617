"""CLI test helpers: run ``radlens`` in-process, and undo its logging set-up afterwards."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from radlens.cli.main import app


@pytest.fixture(autouse=True)
def _restore_log_levels() -> Iterator[None]:
    # ``configure_logging`` sets the radlens and pydicom logger levels for the process.
    loggers = [logging.getLogger(name) for name in ("radlens", "pydicom")]
    levels = [lg.level for lg in loggers]
    yield
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(level)


@pytest.fixture
def radlens() -> Callable[..., Result]:
    """``radlens(*args)``: invoke the command in-process; ``result.stdout``/``stderr``."""
    runner = CliRunner()

    def invoke(*args: str | Path) -> Result:
        return runner.invoke(app, [str(a) for a in args])

    return invoke


@pytest.fixture
def model_dir(tiny_onnx_model_dir: Path, tmp_path: Path) -> Path:
    """The shared tiny model, copied so a test may rewrite its card, with a train.log for
    the steps that append to it."""
    folder = Path(shutil.copytree(tiny_onnx_model_dir, tmp_path / "zoo" / "tiny_cxr"))
    (folder / "train.log").write_text("trained\n", "utf-8")
    return folder
