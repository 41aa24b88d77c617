"""Parametrization over the real DICOM files, and fixtures for the io tests.

Test functions that take ``pydicom_name``, ``shared_dicom_name`` or ``malformed_name``
run once per file (names relative to their folder; the folder comes from the
``pydicom_data_dir`` / ``shared_data_dir`` fixtures, which skip when the data are absent).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SHARED_DICOM = Path(__file__).parents[2].parent / "shared" / "data" / "dicom"


def _pydicom_names() -> list[str]:
    spec = importlib.util.find_spec("data_store")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return sorted(p.name for p in folder.glob("*.dcm"))


def _shared_names(malformed: bool) -> list[str]:
    if not _SHARED_DICOM.is_dir():
        return []
    names = sorted(p.relative_to(_SHARED_DICOM).as_posix() for p in _SHARED_DICOM.rglob("*.dcm"))
    return [n for n in names if n.startswith("malformed/") == malformed]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    lists = {
        "pydicom_name": _pydicom_names,
        "shared_dicom_name": lambda: _shared_names(malformed=False),
        "malformed_name": lambda: [n.removeprefix("malformed/") for n in _shared_names(True)],
    }
    for name, listing in lists.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, listing())


@pytest.fixture(scope="session")
def dicom_dir(shared_data_dir: Path) -> Path:
    """``../shared/data/dicom``."""
    return shared_data_dir / "dicom"


@pytest.fixture(scope="session")
def ct_head_dir(dicom_dir: Path) -> Path:
    """The 17-slice CT head series (128 rows x 88 columns, 2 mm apart)."""
    return dicom_dir / "ct" / "series_ct_head_17slices"
