"""``to_secondary_capture``: an overlay as a DICOM Secondary Capture image for old viewers.

The object joins the source study (PS3.3 A.8.1, Secondary Capture Image IOD): Study
Instance UID and the patient and study modules are copied from the source instance by
``highdicom.sc.SCImage.from_ref_dataset``; it gets a new series (Modality OT), General
Equipment says ``radlens`` and its version, and the series description says it is an AI
draft.
"""

from __future__ import annotations

import io

import numpy as np
from highdicom.sc import SCImage
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from radlens import __version__
from radlens.report.equipment import complete_derived_image
from radlens.warning_scopes import ignoring

SERIES_DESCRIPTION = "radlens overlay - AI draft, requires physician review"
SERIES_NUMBER = 9901


def to_secondary_capture(
    source: Dataset, rgb: np.ndarray, series_uid: str = "", instance_number: int = 1
) -> Dataset:
    """A Secondary Capture of ``rgb`` (rows, columns, 3 uint8) in ``source``'s study.

    Example:
        >>> sc = to_secondary_capture(pydicom.dcmread("cr.dcm"), overlay)  # doctest: +SKIP
        >>> sc.Modality, sc.Manufacturer
        ('OT', 'radlens')
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"overlay must be (rows, columns, 3), got {rgb.shape}")
    # The overlay keeps the source pixel grid, so the source's orientation holds for it.
    found = [str(v) for v in source.get("PatientOrientation", [])]
    if len(found) != 2:
        raise ValueError("source has no Patient Orientation (0020,0020); cannot place overlay")
    orientation = (found[0], found[1])
    with ignoring():  # highdicom notes on source attributes it copies
        sc = SCImage.from_ref_dataset(
            ref_dataset=source,
            pixel_array=np.ascontiguousarray(rgb, dtype=np.uint8),
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            series_instance_uid=series_uid or generate_uid(),
            series_number=SERIES_NUMBER,
            sop_instance_uid=generate_uid(),
            instance_number=instance_number,
            manufacturer="radlens",
            patient_orientation=orientation,
            transfer_syntax_uid=ExplicitVRLittleEndian,
        )
    sc.SoftwareVersions = __version__
    sc.ManufacturerModelName = "radlens"
    sc.SeriesDescription = SERIES_DESCRIPTION
    sc.ImageComments = "AI generated - not for primary diagnosis without review"
    complete_derived_image(sc, source, laterality=True)  # Laterality, which dciodvfy asks for
    return sc


def write_secondary_capture(sc: Dataset) -> bytes:
    """``sc`` as PS3.10 file bytes."""
    buffer = io.BytesIO()
    sc.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
