"""Fetal head tests: a minimal valid DICOM ultrasound image (US Image Storage, 8-bit gray)
and a tiny segmentation card to run with a fake backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

from radlens.models.card import (
    AppliesTo,
    Calibration,
    InputSpec,
    Measure,
    ModelCard,
    SegmentationSpec,
    Training,
)

SEG_INPUT_SIZE = (64, 96)


def seg_card(offset_px: float = 0.0) -> ModelCard:
    """A fetal-head segmentation card (structure of recipes/fetal_head_hc18), no weights."""
    return ModelCard(
        name="tiny_head",
        version="0.0.1",
        task="segmentation",  # type: ignore[arg-type]
        labels=("background", "fetal head"),
        finding_code="fetal_head",
        finding_label="Fetal head",
        input=InputSpec(size=SEG_INPUT_SIZE, use_window=False),
        applies_to=AppliesTo(modalities=("US",), body_parts=("FETAL_HEAD",)),
        calibration=Calibration(),
        thresholds={"operating": 0.5},
        metrics={},
        training=Training("tests", "synthetic", "CC0-1.0", True),
        intended_use="tests",
        limitations=(),
        sha256="0" * 64,
        outputs=("mask_logits",),
        segmentation=SegmentationSpec(Measure.HEAD_CIRCUMFERENCE, offset_px),
    )


def ellipse_logits(batch: np.ndarray, a: float = 0.3, b: float = 0.25) -> dict[str, np.ndarray]:
    """Logits of an axis-aligned ellipse centred in the input (semi-axes as fractions of
    the input's width and height), for a ``FakeBackend``."""
    rows, cols = batch.shape[-2:]
    yy, xx = np.mgrid[:rows, :cols].astype(np.float32)
    u = (xx + 0.5 - cols / 2) / (a * cols)
    v = (yy + 0.5 - rows / 2) / (b * rows)
    inside = 1.0 - np.sqrt(u**2 + v**2)  # > 0 inside
    logits = np.broadcast_to(inside * 40.0, (len(batch), 1, rows, cols))
    return {"mask_logits": logits.astype(np.float32)}


US_REGION_CM = 3  # Physical Units X/Y Direction: cm (PS3.3 C.8.5.5.1.1)


def write_us_dicom(
    path: Path,
    pixels: np.ndarray,
    pixel_size_mm: float,
    body_part: str = "FETAL_HEAD",
    series_description: str = "",
) -> Dataset:
    """Write ``pixels`` (uint8, rows x columns) as a US image calibrated by one ultrasound
    region of ``pixel_size_mm`` square pixels; return the data set."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = UltrasoundImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "US"
    if body_part:
        ds.BodyPartExamined = body_part
    if series_description:
        ds.SeriesDescription = series_description
    ds.PatientName = "Test^Fetal"
    ds.PatientID = "US-TEST-1"
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = "test"
    ds.PatientOrientation = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    region = Dataset()
    region.RegionSpatialFormat = 1
    region.RegionDataType = 1
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 0
    region.RegionLocationMaxX1 = int(pixels.shape[1]) - 1
    region.RegionLocationMaxY1 = int(pixels.shape[0]) - 1
    region.PhysicalUnitsXDirection = US_REGION_CM
    region.PhysicalUnitsYDirection = US_REGION_CM
    region.PhysicalDeltaX = pixel_size_mm / 10.0
    region.PhysicalDeltaY = pixel_size_mm / 10.0
    ds.SequenceOfUltrasoundRegions = Sequence([region])
    ds.PixelData = np.ascontiguousarray(pixels, np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return ds
