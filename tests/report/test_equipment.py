"""``report.equipment``: the maker's identity and the source clean-up shared by the objects."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import UID

from radlens.report.equipment import DEVICE_UID, clean_source, complete_derived_image


def test_device_uid_is_a_valid_uid_fixed_per_version() -> None:
    assert UID(DEVICE_UID).is_valid and len(DEVICE_UID) <= 64
    from radlens.report import equipment

    assert equipment.DEVICE_UID == DEVICE_UID


def test_clean_source_drops_an_invalid_pixel_spacing_and_leaves_the_source_alone() -> None:
    source = Dataset()
    source.PixelSpacing = [0, 0]
    source.Rows = 4
    clean = clean_source(source)
    assert "PixelSpacing" not in clean and clean.Rows == 4
    assert source.PixelSpacing == [0, 0]
    source.PixelSpacing = [0.2, 0.2]
    assert clean_source(source).PixelSpacing == [0.2, 0.2]


def test_derived_image_gets_patient_orientation_without_frame_of_reference_only() -> None:
    source = Dataset()
    source.PatientOrientation = ["L", "F"]
    derived = Dataset()
    complete_derived_image(derived, source)
    assert list(derived.PatientOrientation) == ["L", "F"] and "Laterality" not in derived
    placed = Dataset()
    placed.FrameOfReferenceUID = "1.2.3"
    complete_derived_image(placed, source, laterality=True)
    assert "PatientOrientation" not in placed and placed.Laterality == ""
