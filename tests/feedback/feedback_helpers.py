"""Helpers of the feedback tests: findings to analyze studies with, and DICOM instances
with chosen equipment and patient."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from radlens.feedback.equipment import Equipment
from radlens.store.db import Database
from radlens.warning_scopes import ignoring

PATIENT_NAME, PATIENT_ID = "Doe^Jane^Q", "MRN-0042-77"
ACME = Equipment("ACME", "Scan 1", "CT01")


@dataclass(frozen=True)
class Spec:
    """One finding of a study the factory makes."""

    probability: float = 0.9
    threshold: float = 0.5
    model: str = "cxr_pneumonia"
    version: str = "1.0.0"
    code: str = "pneumonia"
    label: str = "Pneumonia"
    ood_score: float | None = 0.5
    ood_feature: float | None = None
    ood_input: float | None = None
    grade: int | None = None
    warnings: tuple[str, ...] = ()


@dataclass
class Site:
    """What the factory made: study UID -> finding ids, in spec order."""

    db: Database
    storage: Path
    findings: dict[str, list[str]] = field(default_factory=dict)


def make_instance(
    study_uid: str,
    sop_uid: str,
    equipment: Equipment = ACME,
    patient_id: str = PATIENT_ID,
    frames: int = 1,
    burned_in: bool = False,
) -> bytes:
    """pydicom's CT_small with these UIDs, equipment and patient (and Burned In Annotation
    YES when asked)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    with ignoring():
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = f"{study_uid}.1"
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.Manufacturer = equipment.manufacturer
        ds.ManufacturerModelName = equipment.manufacturer_model
        ds.StationName = equipment.station_name
        ds.PatientName, ds.PatientID = PATIENT_NAME, patient_id
        if burned_in:
            ds.BurnedInAnnotation = "YES"
        if frames > 1:
            ds.NumberOfFrames = frames
            ds.PixelData = ds.PixelData * frames
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
