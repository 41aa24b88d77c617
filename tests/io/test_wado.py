"""WADO-RS for the viewer: DICOM JSON metadata without bulk data, frames sent uncompressed."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder

from radlens.errors import NotFoundError
from radlens.io.wado import web_frame, web_metadata
from radlens.warning_scopes import ignoring

pytest.importorskip("data_store", reason="needs pydicom-data (pip install pydicom-data)")

# (file, transfer syntax it tests); every one is compressed.
COMPRESSED = [
    "JPEG2000.dcm",  # JPEG 2000, 16-bit grayscale
    "JPEG-LL.dcm",  # JPEG lossless process 14, 16-bit grayscale
    "MR_small_RLE.dcm",  # RLE, signed 16-bit grayscale
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
    "SC_rgb_rle.dcm",  # RLE, RGB
    "US1_J2KR.dcm",  # JPEG 2000 lossless, YBR_RCT
    "SC_rgb_jpeg_lossy_gdcm.dcm",  # JPEG baseline, YBR_FULL
]
COLOUR = ["SC_rgb_rle.dcm", "US1_J2KR.dcm", "SC_rgb_jpeg_lossy_gdcm.dcm"]
MULTI_FRAME = ["emri_small.dcm", "SC_rgb_rle_2frame.dcm", "emri_small_jpeg_2k_lossless.dcm"]

PIXEL_SPACING, IMAGER_PIXEL_SPACING, ORIENTATION = "00280030", "00181164", "00200037"


def _path(name: str) -> Path:
    """A pydicom-data file; skips when no installed plugin decodes its transfer syntax."""
    path = Path(get_testdata_file(name))  # type: ignore[arg-type]
    syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    decoder = get_decoder(syntax)
    if not decoder.is_available:
        pytest.skip(f"no decoder plugin for {syntax.name}: {decoder.missing_dependencies}")
    return path


def _pixel_array(path: Path) -> np.ndarray:
    """pydicom's own decoding, frame axis first (colour converted to RGB)."""
    with ignoring():  # e.g. Bits Stored differing from the J2K stream
        array = pydicom.dcmread(path).pixel_array
    frames = int(pydicom.dcmread(path, stop_before_pixels=True).get("NumberOfFrames", 1) or 1)
    return array if frames > 1 else array[np.newaxis]


def _header(path: Path) -> Dataset:
    return Dataset.from_json(web_metadata(path))


def _sent(path: Path, number: int) -> np.ndarray:
    """Frame ``number`` as sent, shaped and typed by the metadata that describes it."""
    header = _header(path)
    kind = "i" if header.PixelRepresentation else "u"
    dtype = np.dtype(f"<{kind}{header.BitsAllocated // 8}")
    data = web_frame(path, number)
    samples = header.SamplesPerPixel
    assert len(data) == header.Rows * header.Columns * samples * dtype.itemsize
    shape = (header.Rows, header.Columns, 3) if samples == 3 else (header.Rows, header.Columns)
    return np.frombuffer(data, dtype).reshape(shape)


def _save(ds: Dataset, tmp_path: Path, name: str = "edited.dcm") -> Path:
    path = tmp_path / name
    with ignoring():  # invalid values on purpose
        ds.save_as(path, enforce_file_format=True)
    return path


def _ct_small() -> Dataset:
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # type: ignore[arg-type]


# --- metadata ----------------------------------------------------------------------------


def test_metadata_is_dicom_json_with_what_a_viewer_needs() -> None:
    path = _path("MR_small_RLE.dcm")
    document = web_metadata(path)
    source = pydicom.dcmread(path, stop_before_pixels=True)
    header = Dataset.from_json(document)
    assert all(len(tag) == 8 and "vr" in element for tag, element in document.items())
    assert header.SOPInstanceUID == source.SOPInstanceUID
    assert header.SeriesInstanceUID == source.SeriesInstanceUID
    assert header.StudyInstanceUID == source.StudyInstanceUID
    assert (header.Rows, header.Columns) == (64, 64)
    assert (header.SamplesPerPixel, header.PhotometricInterpretation) == (1, "MONOCHROME2")
    assert (header.BitsAllocated, header.BitsStored, header.HighBit) == (16, 16, 15)
    assert header.PixelRepresentation == source.PixelRepresentation
    assert header.NumberOfFrames == 1
    # what the viewer needs to place and window the image is passed on as stored
    assert [float(v) for v in header.PixelSpacing] == [0.3125, 0.3125]
    assert [float(v) for v in header.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert [float(v) for v in header.ImagePositionPatient] == pytest.approx(
        [float(v) for v in source.ImagePositionPatient]
    )
    assert (float(header.WindowCenter), float(header.WindowWidth)) == (
        float(source.WindowCenter),
        float(source.WindowWidth),
    )
    # nothing of the header but the pixel description is changed or dropped
    assert {e.tag for e in source} <= {e.tag for e in header}


def test_metadata_keeps_the_rescale_a_viewer_applies(tmp_path: Path) -> None:
    ds = _ct_small()
    header = _header(_save(ds, tmp_path))
    assert float(header.RescaleSlope) == float(ds.RescaleSlope)
    assert float(header.RescaleIntercept) == float(ds.RescaleIntercept)
    assert header.PixelRepresentation == 1 and header.BitsAllocated == 16


@pytest.mark.parametrize("name", COMPRESSED)
def test_metadata_leaves_the_pixel_data_out(name: str) -> None:
    document = web_metadata(_path(name))
    assert "7FE00010" not in document
    assert not any("BulkDataURI" in element for element in document.values())


def test_metadata_leaves_large_binary_values_out_and_keeps_small_ones(tmp_path: Path) -> None:
    ds = _ct_small()
    ds.add_new(0x00091010, "OB", b"\x01" * 128)  # private, small
    ds.add_new(0x00091011, "OB", b"\x02" * (100 * 1024))  # private, large
    ds.add_new(0x60003000, "OW", b"\x00" * (100 * 1024))  # overlay data, large
    document = web_metadata(_save(ds, tmp_path))
    assert "00091010" in document and "InlineBinary" in document["00091010"]
    assert "00091011" not in document and "60003000" not in document


@pytest.mark.parametrize("name", COLOUR)
def test_metadata_describes_colour_as_interleaved_rgb(name: str) -> None:
    header = _header(_path(name))
    assert header.SamplesPerPixel == 3
    assert header.PhotometricInterpretation == "RGB"
    assert header.PlanarConfiguration == 0
    assert (header.BitsAllocated, header.BitsStored, header.HighBit) == (8, 8, 7)


def test_metadata_of_a_multi_frame_object_counts_its_frames() -> None:
    assert _header(_path("emri_small.dcm")).NumberOfFrames == 10


# --- frames ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPRESSED)
def test_frame_of_a_compressed_instance_is_the_decoded_pixels(name: str) -> None:
    path = _path(name)
    expected = _pixel_array(path)[0]
    sent = _sent(path, 1)
    assert sent.shape == expected.shape
    assert np.array_equal(sent, expected)


@pytest.mark.parametrize("name", COMPRESSED)
def test_frame_bytes_are_little_endian_in_the_decoded_type(name: str) -> None:
    path = _path(name)
    expected = _pixel_array(path)[0]
    assert web_frame(path, 1) == expected.astype(expected.dtype.newbyteorder("<")).tobytes()


def test_frame_of_ybr_full_is_converted_to_rgb() -> None:
    path = _path("SC_ybr_full_uncompressed.dcm")
    header = _header(path)
    assert header.PhotometricInterpretation == "RGB"
    rgb = _sent(path, 1)
    assert np.array_equal(rgb, _pixel_array(path)[0])
    # the test image's first rows are pure red: R high, G and B low
    assert rgb[0, 0, 0] > 200 and rgb[0, 0, 1] < 50 and rgb[0, 0, 2] < 50


@pytest.mark.parametrize("name", MULTI_FRAME)
def test_each_frame_of_a_multi_frame_object_is_its_own(name: str) -> None:
    path = _path(name)
    expected = _pixel_array(path)
    first, second = _sent(path, 1), _sent(path, 2)
    assert not np.array_equal(first, second)
    assert np.array_equal(first, expected[0])
    assert np.array_equal(second, expected[1])
    last = expected.shape[0]
    assert np.array_equal(_sent(path, last), expected[-1])


@pytest.mark.parametrize("number", [0, -1, 2])
def test_a_frame_out_of_range_is_not_found(number: int) -> None:
    with pytest.raises(NotFoundError, match="no frame"):
        web_frame(_path("MR_small_RLE.dcm"), number)


def test_a_frame_past_the_last_of_a_multi_frame_object_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="has 10"):
        web_frame(_path("emri_small.dcm"), 11)


def test_a_rewritten_file_is_decoded_again(tmp_path: Path) -> None:
    ds = _ct_small()
    path = _save(ds, tmp_path)
    before = web_frame(path, 1)
    ds.PixelData = (ds.pixel_array + 1).astype(ds.pixel_array.dtype).tobytes()
    _save(ds, tmp_path)
    stamp = path.stat().st_mtime_ns + 1_000_000_000  # a clock tick may be coarser than a write
    os.utime(path, ns=(stamp, stamp))
    after = web_frame(path, 1)
    assert before != after
    assert np.array_equal(np.frombuffer(after, "<i2"), ds.pixel_array.ravel())


# --- geometry a viewer cannot use ------------------------------------------------------


def test_zero_pixel_spacing_and_all_zero_orientation_are_left_out(tmp_path: Path) -> None:
    ds = _ct_small()
    ds.PixelSpacing = [0, 0]
    ds.ImageOrientationPatient = [0, 0, 0, 0, 0, 0]
    document = web_metadata(_save(ds, tmp_path))
    assert PIXEL_SPACING not in document and ORIENTATION not in document
    # the rest of the header still arrives, and the frame is still sent
    header = Dataset.from_json(document)
    assert header.SOPInstanceUID == ds.SOPInstanceUID and header.Rows == ds.Rows
    assert len(web_frame(tmp_path / "edited.dcm", 1)) == ds.Rows * ds.Columns * 2


def test_valid_spacing_and_orientation_are_passed_on(tmp_path: Path) -> None:
    ds = _ct_small()
    document = web_metadata(_save(ds, tmp_path))
    assert document[PIXEL_SPACING]["Value"] == pytest.approx([float(v) for v in ds.PixelSpacing])
    assert document[ORIENTATION]["Value"] == pytest.approx(
        [float(v) for v in ds.ImageOrientationPatient]
    )


@pytest.mark.parametrize(
    "spacing",
    [[0.5, 0], [0, 0.5], [-0.5, 0.5], ["NaN", 0.5], ["inf", "inf"], [0.5], [0.5, 0.5, 0.5]],
    ids=["zero-column", "zero-row", "negative", "nan", "infinite", "one-value", "three-values"],
)
def test_unusable_pixel_spacing_is_left_out(tmp_path: Path, spacing: list[Any]) -> None:
    ds = _ct_small()
    with ignoring():  # pydicom warns about NaN and a wrong VM
        ds.PixelSpacing = spacing
        ds.ImagerPixelSpacing = spacing
    document = web_metadata(_save(ds, tmp_path))
    assert PIXEL_SPACING not in document and IMAGER_PIXEL_SPACING not in document
    assert ORIENTATION in document


@pytest.mark.parametrize(
    "cosines",
    [
        [1, 0, 0, 0, 0, 0],  # no column direction
        [0, 0, 0, 0, 1, 0],  # no row direction
        [1, 0, 0, 1, 0, 0],  # row and column parallel: no plane
        [1, 0, 0, -1, 0, 0],
        [1, 0, 0, 0, 1],  # five values
        [1, 0, 0, "NaN", 1, 0],
    ],
    ids=["no-column", "no-row", "parallel", "antiparallel", "five-values", "nan"],
)
def test_unusable_orientation_is_left_out(tmp_path: Path, cosines: list[Any]) -> None:
    ds = _ct_small()
    with ignoring():
        ds.ImageOrientationPatient = cosines
    document = web_metadata(_save(ds, tmp_path))
    assert ORIENTATION not in document
    assert PIXEL_SPACING in document


def test_oblique_orientation_rounded_in_the_file_is_passed_on(tmp_path: Path) -> None:
    ds = _ct_small()
    c = math.sqrt(0.5)
    ds.ImageOrientationPatient = [round(c, 5), round(c, 5), 0, 0, 0, -1]
    document = web_metadata(_save(ds, tmp_path))
    assert document[ORIENTATION]["Value"] == pytest.approx([0.70711, 0.70711, 0, 0, 0, -1])


def test_unusable_geometry_inside_functional_groups_is_left_out(tmp_path: Path) -> None:
    ds = _ct_small()
    measures, plane = Dataset(), Dataset()
    measures.PixelSpacing = [0, 0]
    measures.SliceThickness = 1
    plane.ImageOrientationPatient = [0, 0, 0, 0, 0, 0]
    good_measures = Dataset()
    good_measures.PixelSpacing = [0.5, 0.5]
    shared, frame = Dataset(), Dataset()
    shared.PixelMeasuresSequence = [measures]
    shared.PlaneOrientationSequence = [plane]
    frame.PixelMeasuresSequence = [good_measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.PerFrameFunctionalGroupsSequence = [frame]
    path = _save(ds, tmp_path)
    header = Dataset.from_json(web_metadata(path))
    (shared_sent,) = header.SharedFunctionalGroupsSequence
    assert "PixelSpacing" not in shared_sent.PixelMeasuresSequence[0]
    assert shared_sent.PixelMeasuresSequence[0].SliceThickness == 1
    assert "ImageOrientationPatient" not in shared_sent.PlaneOrientationSequence[0]
    (frame_sent,) = header.PerFrameFunctionalGroupsSequence
    assert [float(v) for v in frame_sent.PixelMeasuresSequence[0].PixelSpacing] == [0.5, 0.5]
    # only the metadata sent loses them: the stored file keeps what it had
    stored = pydicom.dcmread(path, stop_before_pixels=True)
    kept = stored.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    assert [float(v) for v in kept] == [0, 0]
