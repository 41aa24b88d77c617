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
    frame_of_reference,
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


def test_cr_chest_heatmap_becomes_a_parametric_map_in_a_frame_of_its_own(
    cr_chest: Dataset, tmp_path: Path
) -> None:
    heatmap = heat(512, 482)
    pm = to_parametric_map(cr_chest, heatmap_finding(cr_chest, heatmap))
    # the caller's header is left as it was
    assert "FrameOfReferenceUID" not in cr_chest and "SliceThickness" not in cr_chest
    assert [float(v) for v in cr_chest.PixelSpacing] == [0, 0]
    assert pm.FrameOfReferenceUID == frame_of_reference(cr_chest)
    assert pm.StudyInstanceUID == cr_chest.StudyInstanceUID
    assert (pm.Rows, pm.Columns) == (1955, 1841)
    shared = pm.SharedFunctionalGroupsSequence[0]
    # Patient Orientation L\F: rows run to the patient's left, columns to the feet.
    orientation = shared.PlaneOrientationSequence[0].ImageOrientationPatient
    assert [float(v) for v in orientation] == [1, 0, 0, 0, 0, -1]
    [frame] = pm.PerFrameFunctionalGroupsSequence
    assert [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient] == [0, 0, 0]
    # RG1's Pixel Spacing is 0\0 (unknown) and a projection has no slices: none is made up.
    assert not {"PixelSpacing", "SliceThickness", "SpacingBetweenSlices"} & set(
        shared.PixelMeasuresSequence[0].dir()
    )
    [source] = frame.DerivationImageSequence[0].SourceImageSequence
    assert source.ReferencedSOPInstanceUID == cr_chest.SOPInstanceUID
    assert source.SpatialLocationsPreserved == "YES"

    record = read_parametric_map(reread(pm))
    assert record.sop_instance_uid == cr_chest.SOPInstanceUID
    expected = resample_heatmap(heatmap, cr_chest.Rows, cr_chest.Columns)
    assert np.abs(record.heatmap - expected).max() <= STEP
    warnings = dciodvfy(pm, tmp_path)
    assert not any("Pixel" in w or "Frame of Reference" in w for w in warnings), warnings


def test_maps_of_one_projection_image_share_its_frame_and_other_images_get_another(
    cr_chest: Dataset, us_image: Dataset
) -> None:
    first = to_parametric_map(cr_chest, heatmap_finding(cr_chest, heat(8, 8)))
    second = to_parametric_map(cr_chest, heatmap_finding(cr_chest, heat(16, 16)))
    assert first.FrameOfReferenceUID == second.FrameOfReferenceUID
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert frame_of_reference(us_image) != frame_of_reference(cr_chest)


def test_dx_heatmap_map_keeps_the_pixel_spacing_the_source_states(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    dx = pydicom.dcmread(
        shared_data_dir / "dicom" / "cr_dx" / "DX_veterinary_chest.dcm", stop_before_pixels=True
    )
    pm = to_parametric_map(dx, heatmap_finding(dx, heat(32, 32)))
    measures = pm.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert [float(v) for v in measures.PixelSpacing] == pytest.approx(
        [float(v) for v in dx.PixelSpacing]
    )
    assert "SliceThickness" not in measures
    dciodvfy(pm, tmp_path)


def test_ultrasound_with_patient_orientation_gets_a_parametric_map(
    us_image: Dataset, tmp_path: Path
) -> None:
    oriented = Dataset(dict(us_image.items()))
    oriented.PatientOrientation = ["R", "F"]
    heatmap = heat(64, 80)
    pm = to_parametric_map(oriented, heatmap_finding(oriented, heatmap))
    orientation = pm.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
    assert [float(v) for v in orientation.ImageOrientationPatient] == [-1, 0, 0, 0, 0, -1]
    record = read_parametric_map(reread(pm))
    assert record.heatmap.shape == (600, 800)
    assert np.abs(record.heatmap - resample_heatmap(heatmap, 600, 800)).max() <= STEP
    dciodvfy(pm, tmp_path)


def test_image_without_frame_of_reference_or_patient_axes_gets_no_parametric_map(
    us_image: Dataset, us_cine: Dataset, cr_chest: Dataset
) -> None:
    # Most ultrasound: no Patient Orientation, so its plane in the patient is unknown.
    with pytest.raises(InputError, match="Patient Orientation"):
        to_parametric_map(us_image, heatmap_finding(us_image, heat(64, 64)))
    oblique = Dataset(dict(cr_chest.items()))
    oblique.PatientOrientation = ["LP", "F"]  # only the nearest axes
    with pytest.raises(InputError, match="Patient Orientation"):
        to_parametric_map(oblique, heatmap_finding(oblique, heat(64, 64)))
    oriented_cine = Dataset(dict(us_cine.items()))
    oriented_cine.PatientOrientation = ["L", "F"]
    with pytest.raises(InputError, match="single-frame"):
        to_parametric_map(oriented_cine, heatmap_finding(oriented_cine, heat(64, 64)))


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
