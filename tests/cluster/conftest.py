"""Fixtures of the cluster tests: real pydicom-data studies (a CR chest radiograph, which
the shipped chest model reads, and an MR image, which no model reads)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHEST = "RG1_J2KR.dcm"
MR = "MR-SIEMENS-DICOM-WithOverlays.dcm"


@pytest.fixture
def chest_file(pydicom_data_dir: Path) -> Path:
    return pydicom_data_dir / CHEST


@pytest.fixture
def two_studies(pydicom_data_dir: Path, tmp_path: Path) -> Path:
    """A list file naming the chest radiograph and the MR image."""
    listing = tmp_path / "studies.txt"
    listing.write_text(f"# two studies\n{pydicom_data_dir / CHEST}\n\n{pydicom_data_dir / MR}\n")
    return listing
