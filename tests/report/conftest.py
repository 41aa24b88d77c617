"""Real source images for the DICOM result objects: headers of pydicom and pydicom-data files."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset


def header(path: Path | str) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


@pytest.fixture
def cr_chest(pydicom_data_dir: Path) -> Dataset:
    """RG1: CR chest, 1955 x 1841, no Frame of Reference (Pixel Spacing 0\\0)."""
    return header(pydicom_data_dir / "RG1_J2KR.dcm")


@pytest.fixture
def ct_slice() -> Dataset:
    """pydicom's CT_small: one 128 x 128 CT slice in a Frame of Reference."""
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


@pytest.fixture
def enhanced_ct(pydicom_data_dir: Path) -> Dataset:
    """eCT_Supplemental: an Enhanced CT, 2 frames of 512 x 512 with functional groups."""
    return pydicom.dcmread(pydicom_data_dir / "eCT_Supplemental.dcm")


@pytest.fixture
def liver_seg(pydicom_data_dir: Path) -> Dataset:
    """liver.dcm: a DICOM SEG, what radlens's 3D models read."""
    return header(pydicom_data_dir / "liver.dcm")


@pytest.fixture
def us_image(pydicom_data_dir: Path) -> Dataset:
    """OBXXXX1A: one ultrasound frame, 600 x 800 palette colour, no Frame of Reference and an
    empty Patient Orientation (as most ultrasound)."""
    return header(pydicom_data_dir / "OBXXXX1A.dcm")


@pytest.fixture
def us_cine(pydicom_data_dir: Path) -> Dataset:
    """OBXXXX1A_rle_2frame: a 2-frame ultrasound (multi-frame SOP class), no Frame of
    Reference."""
    return header(pydicom_data_dir / "OBXXXX1A_rle_2frame.dcm")
