"""Fixtures of the zoo tests."""

from __future__ import annotations

from pathlib import Path

import pytest

FRACATLAS = "det/fracatlas_fracture"


@pytest.fixture(scope="session")
def fracatlas_view(tmp_path_factory: pytest.TempPathFactory, shared_data_dir: Path) -> Path:
    """The FracAtlas view the fracture models were trained on (``radlens data prepare
    fracatlas``), made from ../shared/data into a temporary folder."""
    from radlens.io.prepare import prepare

    return prepare(
        "fracatlas", shared_data_dir / FRACATLAS, tmp_path_factory.mktemp("fracatlas")
    ).folder
