"""Fixtures shared by every test package: where the real data live."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SHARED_DATA_DIR = Path(__file__).parents[1].parent / "shared" / "data"
"""``../shared/data`` next to the repository (developers' machines only)."""


def find_pydicom_data_dir() -> Path | None:
    """The pydicom-data files (``data_store/data``), or None when not installed."""
    spec = importlib.util.find_spec("data_store")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder if folder.is_dir() else None


@pytest.fixture(scope="session")
def pydicom_data_dir() -> Path:
    """Folder of the pydicom-data DICOM files; skips when pydicom-data is not installed."""
    folder = find_pydicom_data_dir()
    if folder is None:
        pytest.skip("needs pydicom-data (pip install pydicom-data, or radlens[dev])")
    return folder


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data``; skips where it is absent."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip("needs ../shared/data (not in a user's clone)")
    return SHARED_DATA_DIR
