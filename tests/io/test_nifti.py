"""radlens.io.nifti: RAS+ files <-> LPS images, exact geometry, no resampling."""

from __future__ import annotations

import gzip
import sys
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from radlens.domain.imaging import Geometry, Image, ImageLayout
from radlens.errors import IncompatibleInputError, TruncatedFileError, UnsupportedFormatError
from radlens.io.dicom import read_instance
from radlens.io.nifti import read_nifti, read_nifti_shape, write_nifti
from radlens.io.volume import load_volume

RNG = np.random.default_rng(7)


def save(data: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_ras_file_reads_as_lps_zyx(tmp_path: Path) -> None:
    data = RNG.random((5, 6, 7)).astype(np.float32)  # (i, j, k)
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = (10.0, 20.0, 30.0)  # RAS
    image = read_nifti(save(data, affine, tmp_path / "a.nii"))
    assert (image.layout, image.shape) == (ImageLayout.ZYX, (7, 6, 5))
    assert image.array[3, 2, 1] == data[1, 2, 3]
    assert image.geometry.spacing_mm == (4.0, 3.0, 2.0)
    assert image.geometry.origin_lps_mm == (-10.0, -20.0, 30.0)
    # k -> S = +z; j -> A = -y in LPS; i -> R = -x in LPS.
    assert image.geometry.direction_lps == (0, 0, 1, 0, -1, 0, -1, 0, 0)


def test_oblique_volume_round_trips_exactly(tmp_path: Path) -> None:
    angle = np.deg2rad(20)
    c, s = np.cos(angle), np.sin(angle)
    direction = (0.0, s, c, 0.0, c, -s, 1.0, 0.0, 0.0)
    image = Image(
        RNG.random((4, 5, 6)).astype(np.float32),
        ImageLayout.ZYX,
        Geometry((2.5, 0.7, 0.8), (-12.0, 40.5, 7.25), direction),
    )
    path = tmp_path / "oblique.nii.gz"
    write_nifti(image, path)
    back = read_nifti(path)
    assert np.array_equal(back.array, image.array)
    assert back.geometry.spacing_mm == pytest.approx(image.geometry.spacing_mm)
    assert back.geometry.origin_lps_mm == pytest.approx(image.geometry.origin_lps_mm)
    assert back.geometry.direction_lps == pytest.approx(direction)


def test_dicom_volume_written_as_nifti_keeps_its_place_in_the_patient(
    ct_head_dir: Path, tmp_path: Path
) -> None:
    headers = [read_instance(p) for p in sorted(ct_head_dir.glob("IMG*.dcm"))]
    series = replace(headers[0].series, instances=tuple(h.instance for h in headers))
    volume = load_volume(series)
    path = tmp_path / "head.nii.gz"
    write_nifti(volume, path)
    affine = nib.load(path).affine
    x, y, z = volume.geometry.origin_lps_mm or (0, 0, 0)
    assert affine[:3, 3] == pytest.approx((-x, -y, z))  # voxel (0,0,0) in RAS
    assert np.array_equal(read_nifti(path).array, volume.array)


def test_bytes_input_reads_like_the_file(tmp_path: Path) -> None:
    path = save(RNG.random((3, 4, 5)).astype(np.float32), np.eye(4), tmp_path / "b.nii")
    from_file = read_nifti(path)
    for data in (path.read_bytes(), gzip.compress(path.read_bytes())):
        from_bytes = read_nifti(Path("member.nii"), data)
        assert np.array_equal(from_bytes.array, from_file.array)
        assert from_bytes.geometry == from_file.geometry


def test_two_dimensional_file_reads_as_yx(tmp_path: Path) -> None:
    data = RNG.random((5, 6)).astype(np.float32)
    image = read_nifti(save(data, np.eye(4), tmp_path / "slice.nii"))
    assert (image.layout, image.shape) == (ImageLayout.YX, (6, 5))
    assert read_nifti_shape(tmp_path / "slice.nii") == (6, 5)


def test_time_series_is_refused(tmp_path: Path) -> None:
    path = save(np.zeros((2, 3, 4, 5), np.float32), np.eye(4), tmp_path / "fmri.nii")
    with pytest.raises(UnsupportedFormatError, match="not 2D or 3D"):
        read_nifti(path)


def test_junk_and_truncated_files_are_typed_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.nii"
    junk.write_bytes(b"nope" * 100)
    with pytest.raises(UnsupportedFormatError):
        read_nifti(junk)
    full = save(RNG.random((8, 8, 8)).astype(np.float32), np.eye(4), tmp_path / "full.nii")
    cut = tmp_path / "cut.nii"
    cut.write_bytes(full.read_bytes()[:1000])
    with pytest.raises(TruncatedFileError) as caught:
        read_nifti(cut)
    assert str(caught.value).startswith(f"{cut}: ")


def test_colour_image_cannot_be_written(tmp_path: Path) -> None:
    image = Image(np.zeros((2, 2, 3), np.uint8), ImageLayout.YXC, Geometry((1.0, 1.0)))
    with pytest.raises(IncompatibleInputError, match="grayscale"):
        write_nifti(image, tmp_path / "rgb.nii")


def test_without_nibabel_a_nifti_input_is_refused_with_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.eye(4)), path)
    monkeypatch.setitem(sys.modules, "nibabel", None)  # what a base install sees
    for read in (read_nifti, read_nifti_shape):
        with pytest.raises(UnsupportedFormatError, match=r"nibabel.*radlens\[nifti\]") as err:
            read(path)
        assert str(path) in str(err.value)
    monkeypatch.undo()
    assert read_nifti_shape(path) == (6, 5, 4)
