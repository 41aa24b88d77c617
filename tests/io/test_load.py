"""radlens.io.load: one call from a series to its images, whatever the source format."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

from radlens.domain.imaging import ImageLayout, Series
from radlens.errors import IncompatibleInputError, NotAnImageError
from radlens.io.load import load_images
from radlens.io.scan import scan


def only_series(paths: list[Path], modality: str = "") -> Series:
    [study] = scan(paths, modality=modality).studies
    [series] = study.series
    return series


def test_ct_slices_load_as_one_volume(ct_head_dir: Path) -> None:
    [volume] = load_images(only_series([ct_head_dir]))
    assert (volume.layout, volume.shape) == (ImageLayout.ZYX, (17, 128, 88))


def test_volume_from_a_zip_equals_the_volume_from_the_folder(
    ct_head_dir: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "head.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(ct_head_dir.glob("*.dcm"), reverse=True):
            zf.write(path, f"x/{path.name}")
    [from_zip] = load_images(only_series([archive]))
    [from_folder] = load_images(only_series([ct_head_dir]))
    assert np.array_equal(from_zip.array, from_folder.array)


def test_volume_with_a_missing_slice_raises(ct_head_dir: Path, tmp_path: Path) -> None:
    for path in sorted(ct_head_dir.glob("*.dcm")):
        if path.name != "IMG0009.dcm":
            shutil.copy(path, tmp_path)
    with pytest.raises(IncompatibleInputError, match="slices are missing"):
        load_images(only_series([tmp_path]))


def test_single_images_load_one_per_instance(dicom_dir: Path) -> None:
    [image] = load_images(only_series([dicom_dir / "us" / "US_palette_rle_2frame.dcm"]))
    assert (image.layout, image.shape) == (ImageLayout.FYXC, (2, 600, 800, 3))


def test_multiframe_mr_without_positions_loads_as_frames(dicom_dir: Path) -> None:
    [image] = load_images(only_series([dicom_dir / "mr" / "enhancedMR_10frame_j2k_lossless.dcm"]))
    assert (image.layout, image.shape) == (ImageLayout.FYX, (10, 64, 64))


def test_series_without_pixels_is_not_an_image(dicom_dir: Path) -> None:
    with pytest.raises(NotAnImageError, match="no image"):
        load_images(only_series([dicom_dir / "sr" / "SR_dcmtk_nested.dcm"]))


def test_png_and_nifti_load_through_their_readers(tmp_path: Path) -> None:
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    PILImage.fromarray(pixels).save(tmp_path / "x.png")
    series = only_series([tmp_path / "x.png"])
    [image] = load_images(series)
    assert np.array_equal(image.array, pixels)
    assert image.source_uids == (series.instances[0].sop_instance_uid,)

    nib.save(nib.Nifti1Image(np.ones((4, 5, 6), np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    [volume] = load_images(only_series([tmp_path / "v.nii.gz"], modality="MR"))
    assert (volume.layout, volume.shape) == (ImageLayout.ZYX, (6, 5, 4))


def test_png_inside_a_zip_loads(tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (5, 5, 3), dtype=np.uint8)
    PILImage.fromarray(pixels).save(tmp_path / "c.png")
    archive = tmp_path / "c.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tmp_path / "c.png", "img/c.png")
    [image] = load_images(only_series([archive]))
    assert np.array_equal(image.array, pixels)
