"""radlens.io.pixels (through decode_instance): LUTs, colour, twins, geometry, speed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels.processing import apply_color_lut

from radlens.domain.imaging import Image, ImageLayout, Window
from radlens.io.dicom import DicomReadWarning, decode_instance, read_instance
from radlens.warning_scopes import recording

LOSSLESS_TWINS = [
    ("RG1_J2KR.dcm", "RG1_UNCR.dcm"),
    ("RG3_J2KR.dcm", "RG3_UNCR.dcm"),
    ("MR2_J2KR.dcm", "MR2_UNCR.dcm"),
    ("US1_J2KR.dcm", "US1_UNCR.dcm"),  # YBR_RCT vs RGB
    ("emri_small_RLE.dcm", "emri_small.dcm"),
    ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),
    ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm"),
    ("emri_small_big_endian.dcm", "emri_small.dcm"),
    ("OBXXXX1A_rle.dcm", "OBXXXX1A.dcm"),
    ("OBXXXX1A_expb.dcm", "OBXXXX1A.dcm"),  # big-endian palette LUT data
    ("OBXXXX1A_expb_2frame.dcm", "OBXXXX1A_2frame.dcm"),
    ("gdcm-US-ALOKA-16_big.dcm", "gdcm-US-ALOKA-16.dcm"),
    ("693_J2KR.dcm", "693_UNCR.dcm"),
    ("SC_rgb_expb_16bit_2frame.dcm", "SC_rgb_16bit_2frame.dcm"),
    ("liver_expb.dcm", "liver.dcm"),
]
LOSSY_TWINS = [
    ("RG1_J2KI.dcm", "RG1_UNCI.dcm", "RG1_UNCR.dcm"),
    ("MR2_J2KI.dcm", "MR2_UNCI.dcm", "MR2_UNCR.dcm"),
    ("US1_J2KI.dcm", "US1_UNCI.dcm", "US1_UNCR.dcm"),  # YBR_ICT vs RGB
]


def load(path: Path) -> Image:
    return decode_instance(read_instance(path).instance)


def raw_stored(path: Path) -> np.ndarray:
    """Stored values as pydicom decodes them, no LUT applied."""
    return np.asarray(pydicom.dcmread(path).pixel_array)


def psnr_db(a: np.ndarray, b: np.ndarray, dynamic_range: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(dynamic_range**2 / mse)


@pytest.mark.parametrize(("compressed", "uncompressed"), LOSSLESS_TWINS)
def test_lossless_file_decodes_exactly_like_its_uncompressed_twin(
    pydicom_data_dir: Path, compressed: str, uncompressed: str
) -> None:
    a, b = load(pydicom_data_dir / compressed), load(pydicom_data_dir / uncompressed)
    assert a.layout == b.layout
    assert a.array.dtype == b.array.dtype
    assert np.array_equal(a.array, b.array)


@pytest.mark.parametrize(("lossy", "decompressed", "original"), LOSSY_TWINS)
def test_lossy_file_stays_close_to_its_uncompressed_twin(
    pydicom_data_dir: Path, lossy: str, decompressed: str, original: str
) -> None:
    """Lossy JPEG 2000 within a stated tolerance.

    Against the ``*_UNCI`` twin (the NEMA reference decompression of the same lossy
    stream): mean |difference| <= 0.1% of the dynamic range and PSNR >= 60 dB (measured:
    identical). Against the ``*_UNCR`` original: mean |difference| <= 1% of the dynamic
    range and PSNR >= 35 dB (measured: RG1 0.2% / 52 dB, MR2 0.7% / 41 dB, US1 0.7% /
    37 dB), where the dynamic range is max - min of the original.
    """
    a = load(pydicom_data_dir / lossy).array
    for twin, max_mae, min_psnr in ((decompressed, 0.001, 60.0), (original, 0.01, 35.0)):
        b = load(pydicom_data_dir / twin).array
        dynamic_range = float(b.max()) - float(b.min())
        mae = float(np.mean(np.abs(a.astype(np.float64) - b)))
        assert mae / dynamic_range <= max_mae
        assert psnr_db(a, b, dynamic_range) >= min_psnr


def test_twelve_bit_jpeg_extended_decodes_close_to_the_lossless_twin(dicom_dir: Path) -> None:
    """12-bit JPEG Extended goes through GDCM directly (no GPL decoder): NM1 lossy vs NM1
    lossless, mean |difference| <= 2% of the dynamic range, correlation >= 0.98
    (measured 0.8% and 0.987)."""
    lossy = load(dicom_dir / "nm" / "NM1_jpeg_extended_12bit.dcm").array
    lossless = load(dicom_dir / "nm" / "NM1_jpeg_lossless_sv1.dcm").array
    dynamic_range = float(lossless.max() - lossless.min())
    assert np.mean(np.abs(lossy - lossless)) / dynamic_range <= 0.02
    assert np.corrcoef(lossy.ravel(), lossless.ravel())[0, 1] >= 0.98


def test_ct_is_in_hounsfield_units_with_air_near_minus_1000(dicom_dir: Path) -> None:
    image = load(dicom_dir / "ct" / "CT_rando_phantom_implicitLE.dcm")
    assert image.units == "HU"
    border = np.concatenate([image.array[:10].ravel(), image.array[-10:].ravel()])
    assert np.median(border) == pytest.approx(-1000, abs=50)
    assert image.window == Window(40.0, 400.0)


def test_ct_values_are_stored_values_times_slope_plus_intercept(dicom_dir: Path) -> None:
    path = dicom_dir / "ct" / "CT_small_explicitLE.dcm"
    assert np.array_equal(load(path).array, raw_stored(path).astype(np.float32) - 1024)


def test_ct_with_rescale_type_unspecified_is_not_labelled_hu(ct_head_dir: Path) -> None:
    # The 17-slice series says Rescale Type "US" and has air at 0: not HU.
    assert load(ct_head_dir / "IMG0001.dcm").units == "modality"


@pytest.mark.parametrize(("name", "bits"), [("RG1_UNCR.dcm", 15), ("RG3_UNCR.dcm", 10)])
def test_monochrome1_is_inverted_within_the_stored_range(
    pydicom_data_dir: Path, name: str, bits: int
) -> None:
    path = pydicom_data_dir / name
    image = load(path)
    top = 2**bits - 1  # max + min of the stored range (no rescale in these files)
    assert np.array_equal(image.array, top - raw_stored(path).astype(np.float32))
    stored_window = pydicom.dcmread(path, stop_before_pixels=True).WindowCenter
    assert image.window is not None
    assert image.window.center == top - float(stored_window)


def test_monochrome1_chest_shows_lungs_darker_than_mediastinum(pydicom_data_dir: Path) -> None:
    chest = load(pydicom_data_dir / "RG1_UNCR.dcm").array
    rows, cols = chest.shape
    band = chest[rows // 3 : 2 * rows // 3]
    mediastinum = band[:, cols // 2 - cols // 20 : cols // 2 + cols // 20].mean()
    lungs = (band[:, cols // 5 : 3 * cols // 10].mean(), band[:, 7 * cols // 10 : 4 * cols // 5])
    assert mediastinum > lungs[0]
    assert mediastinum > lungs[1].mean()


def test_dx_monochrome1_with_rescale_is_inverted(dicom_dir: Path) -> None:
    path = dicom_dir / "cr_dx" / "DX_veterinary_chest.dcm"
    assert np.array_equal(load(path).array, 255 - raw_stored(path).astype(np.float32))


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("OBXXXX1A_2frame.dcm", (2, 600, 800, 3)),
        ("OBXXXX1A_rle_2frame.dcm", (2, 600, 800, 3)),
        ("SC_rgb_2frame.dcm", (2, 100, 100, 3)),
    ],
)
def test_multiframe_colour_is_fyxc(
    pydicom_data_dir: Path, name: str, shape: tuple[int, ...]
) -> None:
    image = load(pydicom_data_dir / name)
    assert image.layout is ImageLayout.FYXC
    assert image.shape == shape
    assert image.n_frames == 2


def test_multiframe_rgb_jpeg_lossless_ultrasound_is_fyxc(dicom_dir: Path) -> None:
    image = load(dicom_dir / "us" / "US_multiframe_rgb_jpeg_lossless_sv1.dcm")
    assert (image.layout, image.shape) == (ImageLayout.FYXC, (2, 768, 1024, 3))


@pytest.mark.parametrize("name", ["OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm"])
def test_palette_colour_becomes_rgb_through_its_lut(pydicom_data_dir: Path, name: str) -> None:
    path = pydicom_data_dir / name
    image = load(path)
    ds = pydicom.dcmread(path)
    expected = np.right_shift(apply_color_lut(ds.pixel_array, ds), 8).astype(np.uint8)
    assert image.layout is ImageLayout.YXC
    assert np.array_equal(image.array, expected)
    assert len(np.unique(image.array.reshape(-1, 3), axis=0)) > 16  # colour, not gray


def test_ybr_full_is_converted_to_rgb_once(pydicom_data_dir: Path, dicom_dir: Path) -> None:
    reference = load(pydicom_data_dir / "SC_rgb.dcm").array.astype(np.int16)
    for path in (
        pydicom_data_dir / "SC_ybr_full_uncompressed.dcm",
        dicom_dir / "other" / "SC_rgb_jpeg_baseline_ybr.dcm",
    ):
        converted = load(path).array.astype(np.int16)
        assert np.abs(converted - reference).mean() < 2  # twice would be far off
        assert np.abs(converted - reference).max() <= 8


def test_ybr_full_422_jpeg_multiframe_is_rgb(pydicom_data_dir: Path) -> None:
    image = load(pydicom_data_dir / "color3d_jpeg_baseline.dcm")
    assert (image.layout, image.shape, image.units) == (
        ImageLayout.FYXC,
        (120, 480, 640, 3),
        "RGB",
    )


@pytest.mark.parametrize("name", ["SC_rgb_16bit.dcm", "SC_rgb_32bit.dcm"])
def test_wide_rgb_is_scaled_to_uint8(pydicom_data_dir: Path, name: str) -> None:
    assert np.array_equal(
        load(pydicom_data_dir / name).array, load(pydicom_data_dir / "SC_rgb.dcm").array
    )


def test_window_is_derived_from_a_voi_lut_sequence(pydicom_data_dir: Path) -> None:
    # 256-entry linear VOI LUT from input 0: the window that maps 0..255 linearly.
    assert load(pydicom_data_dir / "vlut_04.dcm").window == Window(128.0, 256.0)


def test_modality_lut_sequence_is_applied(pydicom_data_dir: Path) -> None:
    path = pydicom_data_dir / "mlut_18.dcm"
    ds = pydicom.dcmread(path)
    lut = np.asarray(ds.ModalityLUTSequence[0].LUTData)
    first = int(ds.ModalityLUTSequence[0].LUTDescriptor[1])
    index = np.clip(ds.pixel_array.astype(np.int64) - first, 0, len(lut) - 1)
    assert np.array_equal(load(path).array, lut[index].astype(np.float32))


def test_enhanced_ct_uses_functional_groups(pydicom_data_dir: Path) -> None:
    image = load(pydicom_data_dir / "eCT_Supplemental.dcm")
    assert (image.layout, image.shape) == (ImageLayout.FYX, (2, 512, 512))
    assert image.window == Window(49.0, 102.0)
    assert image.geometry.spacing_mm == (0.388672, 0.388672)
    stored = raw_stored(pydicom_data_dir / "eCT_Supplemental.dcm")
    assert np.array_equal(image.array, stored.astype(np.float32) - 1024)  # shared rescale


def test_geometry_from_pixel_spacing_position_and_orientation(dicom_dir: Path) -> None:
    geometry = load(dicom_dir / "ct" / "CT_small_explicitLE.dcm").geometry
    assert geometry.spacing_mm == (0.661468, 0.661468)
    assert geometry.spacing_known
    assert geometry.origin_lps_mm == pytest.approx((-158.135803, -179.035797, -75.699997))
    # Array order: axis 0 (down the rows) = IOP[3:6], axis 1 (along a row) = IOP[0:3].
    assert geometry.direction_lps == (0.0, 1.0, 0.0, 1.0, 0.0, 0.0)


def test_ultrasound_spacing_comes_from_its_calibrated_region(pydicom_data_dir: Path) -> None:
    geometry = load(pydicom_data_dir / "OBXXXX1A.dcm").geometry
    assert geometry.spacing_mm == pytest.approx((0.2622878766, 0.2622878766))
    assert geometry.spacing_known


def test_projection_radiograph_spacing_falls_back_to_imager_pixel_spacing(
    dicom_dir: Path,
) -> None:
    geometry = load(dicom_dir / "cr_dx" / "DX_veterinary_chest.dcm").geometry
    assert geometry.spacing_mm == (1.2, 1.201199999999)


def test_zero_or_missing_spacing_is_unknown_one_millimetre(pydicom_data_dir: Path) -> None:
    geometry = load(pydicom_data_dir / "RG1_UNCR.dcm").geometry  # Pixel Spacing 0\0
    assert (geometry.spacing_mm, geometry.spacing_known) == ((1.0, 1.0), False)


def test_decode_warnings_come_out_as_one_dicom_read_warning(dicom_dir: Path) -> None:
    path = dicom_dir / "malformed" / "CT_bad_sequence_UN.dcm"
    with pytest.warns(DicomReadWarning) as record:
        instance = read_instance(path).instance
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith(str(path))
    assert "value withheld" in message
    assert "dccc9599" not in message  # pydicom quoted the bad value; it stays out
    with recording() as decode_warnings:
        load_image = decode_instance(instance)
    assert all(w.category is DicomReadWarning for w in decode_warnings)
    assert load_image.units == "HU"


def test_a_jpeg2000_chest_decodes_to_its_full_size(pydicom_data_dir: Path) -> None:
    # Decode time is measured by benchmarks/bench_analyze.py, not asserted here.
    instance = read_instance(pydicom_data_dir / "RG1_J2KR.dcm").instance  # 1955 x 1841
    image = decode_instance(instance)
    assert image.shape == (1955, 1841)
