"""radlens.io.volume: slices -> ZYX volume, sorted by position, with checked spacing."""

from __future__ import annotations

import random
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest

from radlens.domain.imaging import ImageLayout, Instance, Series
from radlens.errors import IncompatibleInputError
from radlens.io.dicom import DicomReadWarning, decode_instance, read_instance
from radlens.io.scan import scan
from radlens.io.volume import is_volume_series, load_volume

HEAD_ORIGIN = (82.1807, 122.163, -24.707)  # IMG0001, the lowest slice


def series_of(paths: list[Path]) -> Series:
    headers = [read_instance(p) for p in paths]
    return replace(headers[0].series, instances=tuple(h.instance for h in headers))


def head_paths(ct_head_dir: Path) -> list[Path]:
    return sorted(ct_head_dir.glob("IMG*.dcm"))


def test_head_series_assembles_into_one_17_slice_volume(ct_head_dir: Path) -> None:
    series = series_of(head_paths(ct_head_dir))
    assert is_volume_series(series)
    volume = load_volume(series)
    assert volume.layout is ImageLayout.ZYX
    assert volume.shape == (17, 128, 88)  # Rows 128, Columns 88
    assert volume.array.dtype == np.float32
    assert volume.geometry.spacing_mm == pytest.approx((2.0, 2.0, 2.0))
    assert volume.geometry.origin_lps_mm == pytest.approx(HEAD_ORIGIN)
    # IOP = (-1,0,0, 0,-1,0): normal = row x col = (0,0,1); axes in array order z, y, x.
    assert volume.geometry.direction_lps == pytest.approx((0, 0, 1, 0, -1, 0, -1, 0, 0))
    assert len(volume.source_uids) == 17


def test_volume_slices_are_in_position_order(ct_head_dir: Path) -> None:
    paths = head_paths(ct_head_dir)
    volume = load_volume(series_of(paths))
    by_z = sorted(paths, key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    for k, path in enumerate(by_z):
        assert np.array_equal(volume.array[k], decode_instance(read_instance(path).instance).array)


def test_volume_voxel_positions_match_slice_positions(ct_head_dir: Path) -> None:
    paths = head_paths(ct_head_dir)
    volume = load_volume(series_of(paths))
    geometry = volume.geometry
    assert geometry.direction_lps is not None
    d_z = np.array(geometry.direction_lps[:3])
    for k, uid in enumerate(volume.source_uids):
        path = next(p for p in paths if read_instance(p).instance.sop_instance_uid == uid)
        position = np.array(pydicom.dcmread(path).ImagePositionPatient, dtype=float)
        expected = np.array(geometry.origin_lps_mm) + k * geometry.spacing_mm[0] * d_z
        assert position == pytest.approx(expected, abs=1e-3)


def test_shuffled_instance_order_gives_the_same_volume(ct_head_dir: Path) -> None:
    series = series_of(head_paths(ct_head_dir))
    reference = load_volume(series)
    shuffled = list(series.instances)
    random.Random(7).shuffle(shuffled)
    volume = load_volume(replace(series, instances=tuple(shuffled)))
    assert np.array_equal(volume.array, reference.array)
    assert volume.geometry == reference.geometry


def test_files_copied_under_shuffled_names_give_the_same_volume(
    ct_head_dir: Path, tmp_path: Path
) -> None:
    paths = head_paths(ct_head_dir)
    reference = load_volume(series_of(paths))
    names = [f"slice_{n:02d}.dcm" for n in range(len(paths))]
    random.Random(3).shuffle(names)
    for path, name in zip(paths, names, strict=True):
        shutil.copy(path, tmp_path / name)
    [study] = scan([tmp_path]).studies
    volume = load_volume(study.series[0])
    assert np.array_equal(volume.array, reference.array)
    assert volume.geometry == reference.geometry


def test_missing_slice_makes_gaps_inconsistent(ct_head_dir: Path) -> None:
    paths = head_paths(ct_head_dir)
    series = series_of(paths[:8] + paths[9:])
    with pytest.raises(IncompatibleInputError, match="slice gaps"):
        load_volume(series)


def test_two_slices_at_one_position_are_refused(ct_head_dir: Path) -> None:
    series = series_of(head_paths(ct_head_dir)[:4])
    first, second, *rest = series.instances
    clash = replace(second, position_lps_mm=first.position_lps_mm)
    with pytest.raises(IncompatibleInputError, match="share one position"):
        load_volume(replace(series, instances=(first, clash, *rest)))


def test_different_orientation_is_refused(ct_head_dir: Path) -> None:
    series = series_of(head_paths(ct_head_dir)[:4])
    tilted: Instance = replace(series.instances[2], orientation_lps=(1, 0, 0, 0, 0, -1))
    instances = (*series.instances[:2], tilted, series.instances[3])
    odd = replace(series, instances=instances)
    assert not is_volume_series(odd)
    with pytest.raises(IncompatibleInputError, match="different orientation"):
        load_volume(odd)


def test_gantry_tilt_keeps_exact_voxel_positions(ct_head_dir: Path, tmp_path: Path) -> None:
    """A sheared stack (positions drift 0.5 mm in y per slice) keeps axis z along the stack."""
    paths = []
    for k, source in enumerate(head_paths(ct_head_dir)[:5]):
        ds = pydicom.dcmread(source)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 0.5 * k, z]
        ds.InstanceNumber = 5 - k
        paths.append(tmp_path / f"{k}.dcm")
        ds.save_as(paths[-1])
    volume = load_volume(series_of(paths))
    step = np.array([0.0, 0.5, 2.0])
    assert volume.geometry.spacing_mm[0] == pytest.approx(np.linalg.norm(step))
    assert volume.geometry.direction_lps is not None
    assert volume.geometry.direction_lps[:3] == pytest.approx(step / np.linalg.norm(step))


def test_enhanced_ct_frames_become_a_volume_sorted_along_the_normal(
    pydicom_data_dir: Path,
) -> None:
    header = read_instance(pydicom_data_dir / "eCT_Supplemental.dcm")
    assert is_volume_series(header.series)
    volume = load_volume(header.series)
    frames = decode_instance(header.instance)
    # IOP (-1,0,0, 0,1,0): normal (0,0,-1); frame 2 (z=-149) comes before frame 1 (z=-159).
    assert volume.shape == (2, 512, 512)
    assert np.array_equal(volume.array[0], frames.array[1])
    assert volume.geometry.spacing_mm == pytest.approx((10.0, 0.388672, 0.388672))
    assert volume.geometry.origin_lps_mm == pytest.approx((99.5, -301.5, -149.0))


def test_single_slice_or_multiframe_without_positions_is_not_a_volume(
    dicom_dir: Path, pydicom_data_dir: Path
) -> None:
    assert not is_volume_series(read_instance(dicom_dir / "ct" / "CT_small_explicitLE.dcm").series)
    assert not is_volume_series(read_instance(pydicom_data_dir / "emri_small.dcm").series)
    with pytest.warns(DicomReadWarning):
        rtstruct = read_instance(dicom_dir / "rt" / "RTSTRUCT.dcm").series
    assert not is_volume_series(rtstruct)


def test_single_slice_is_refused_as_a_volume(dicom_dir: Path) -> None:
    series = read_instance(dicom_dir / "ct" / "CT_small_explicitLE.dcm").series
    with pytest.raises(IncompatibleInputError, match="at least two slices"):
        load_volume(series)


# --- DICOM Segmentation objects as mask volumes -----------------------------------------

FRAME_BYTES = 512 * 512 // 8  # one BINARY frame of SEG_liver_3frame, bit-packed


def seg_copy(dicom_dir: Path, tmp_path: Path, keep: list[int], z_of: dict[int, float]) -> Path:
    """SEG_liver_3frame with only frames ``keep`` (0-based), positions' z replaced."""
    ds = pydicom.dcmread(dicom_dir / "seg" / "SEG_liver_3frame.dcm")
    frames = ds.PerFrameFunctionalGroupsSequence
    data = bytes(ds.PixelData)
    ds.PixelData = b"".join(data[k * FRAME_BYTES : (k + 1) * FRAME_BYTES] for k in keep)
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence([frames[k] for k in keep])
    for k, item in zip(keep, ds.PerFrameFunctionalGroupsSequence, strict=True):
        if k in z_of:
            item.PlanePositionSequence[0].ImagePositionPatient[2] = z_of[k]
    ds.NumberOfFrames = len(keep)
    ds.BodyPartExamined = "ADRENAL"
    out = tmp_path / "seg.dcm"
    ds.save_as(out, enforce_file_format=True)
    return out


def test_a_segmentation_is_one_mask_volume(dicom_dir: Path) -> None:
    series = scan([dicom_dir / "seg" / "SEG_liver_3frame.dcm"]).studies[0].series[0]
    assert is_volume_series(series)
    volume = load_volume(series)
    assert volume.layout is ImageLayout.ZYX and volume.array.shape == (3, 512, 512)
    assert set(np.unique(volume.array)) <= {0.0, 1.0} and volume.array.max() == 1.0
    assert volume.geometry.spacing_mm[0] == pytest.approx(1.0)


def test_a_segmentation_without_its_empty_frames_gets_them_back_as_zeros(
    dicom_dir: Path, tmp_path: Path
) -> None:
    full = load_volume(scan([dicom_dir / "seg" / "SEG_liver_3frame.dcm"]).studies[0].series[0])
    gappy = seg_copy(dicom_dir, tmp_path, keep=[0, 2], z_of={})
    volume = load_volume(scan([gappy]).studies[0].series[0])
    assert volume.array.shape == (3, 512, 512)
    np.testing.assert_array_equal(volume.array[[0, 2]], full.array[[0, 2]])
    assert volume.array[1].max() == 0.0


def test_segments_at_one_position_are_merged(dicom_dir: Path, tmp_path: Path) -> None:
    full = load_volume(scan([dicom_dir / "seg" / "SEG_liver_3frame.dcm"]).studies[0].series[0])
    z0 = float(
        pydicom.dcmread(dicom_dir / "seg" / "SEG_liver_3frame.dcm")
        .PerFrameFunctionalGroupsSequence[0]
        .PlanePositionSequence[0]
        .ImagePositionPatient[2]
    )
    # Frame 1 moved onto frame 0's plane: as if it were a second segment there.
    merged = seg_copy(dicom_dir, tmp_path, keep=[0, 1, 2], z_of={1: z0})
    volume = load_volume(scan([merged]).studies[0].series[0])
    assert volume.array.shape == (3, 512, 512)
    np.testing.assert_array_equal(volume.array[0], np.maximum(full.array[0], full.array[1]))
    assert volume.array[1].max() == 0.0  # nothing left at frame 1's old plane
