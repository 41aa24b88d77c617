"""``radlens data prepare``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

from fracatlas_helpers import fracatlas_like

Radlens = Callable[..., Result]


def test_prepare_prints_the_counts_per_split(radlens: Radlens, tmp_path: Path) -> None:
    source = fracatlas_like(tmp_path / "src")
    result = radlens("data", "prepare", "fracatlas", source, "-o", tmp_path / "view")
    assert result.exit_code == 0, result.output
    assert "val: fracture 2, no fracture 4" in result.output
    assert (tmp_path / "view" / "labels.csv").exists()


def test_an_unknown_dataset_is_a_one_line_input_error(radlens: Radlens, tmp_path: Path) -> None:
    result = radlens("data", "prepare", "nope", tmp_path, "-o", tmp_path / "view")
    assert result.exit_code == 2 and "no preparer 'nope'" in result.output
