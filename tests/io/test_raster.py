"""radlens.io.raster: PNG/JPEG in (grayscale YX float32, colour YXC uint8) and PNG out."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from radlens.domain.imaging import ImageLayout
from radlens.errors import IncompatibleInputError, TruncatedFileError, UnsupportedFormatError
from radlens.io.raster import RasterInfo, read_raster, read_raster_info, write_png

RNG = np.random.default_rng(20240601)


def png_bytes(image: PILImage.Image, format: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def test_grayscale_png_reads_as_yx_float32(tmp_path: Path) -> None:
    pixels = RNG.integers(0, 256, (12, 9), dtype=np.uint8)
    path = tmp_path / "gray.png"
    PILImage.fromarray(pixels).save(path)
    image = read_raster(path)
    assert image.layout is ImageLayout.YX
    assert image.array.dtype == np.float32
    assert np.array_equal(image.array, pixels)
    assert not image.geometry.spacing_known


def test_sixteen_bit_png_keeps_its_values() -> None:
    pixels = RNG.integers(0, 65536, (6, 5), dtype=np.uint16)
    image = read_raster(Path("16bit.png"), png_bytes(PILImage.fromarray(pixels)))
    assert np.array_equal(image.array, pixels.astype(np.float32))


def test_colour_png_reads_as_yxc_uint8() -> None:
    pixels = RNG.integers(0, 256, (7, 8, 3), dtype=np.uint8)
    image = read_raster(Path("colour.png"), png_bytes(PILImage.fromarray(pixels)))
    assert (image.layout, image.units) == (ImageLayout.YXC, "RGB")
    assert np.array_equal(image.array, pixels)


def test_rgb_with_equal_channels_reads_as_grayscale() -> None:
    gray = RNG.integers(0, 256, (7, 8), dtype=np.uint8)
    image = read_raster(Path("x.png"), png_bytes(PILImage.fromarray(np.stack([gray] * 3, -1))))
    assert image.layout is ImageLayout.YX
    assert np.array_equal(image.array, gray)


def test_alpha_is_dropped_and_palette_expanded() -> None:
    rgba = RNG.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    image = read_raster(Path("rgba.png"), png_bytes(PILImage.fromarray(rgba)))
    assert np.array_equal(image.array, rgba[..., :3])
    palette = PILImage.fromarray(rgba[..., :3]).convert("P", palette=PILImage.Palette.ADAPTIVE)
    expanded = read_raster(Path("p.png"), png_bytes(palette))
    assert np.array_equal(expanded.array, np.asarray(palette.convert("RGB")))


def test_exif_orientation_is_applied() -> None:
    pixels = RNG.integers(0, 256, (10, 20, 3), dtype=np.uint8)
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = png_bytes(PILImage.fromarray(pixels), "JPEG", exif=exif, quality=95)
    assert read_raster(Path("phone.jpg"), data).shape == (20, 10, 3)


def test_info_reads_size_and_samples_as_read_raster_does() -> None:
    colour = png_bytes(PILImage.fromarray(RNG.integers(0, 256, (3, 4, 3), np.uint8)))
    assert read_raster_info(Path("x.png"), colour) == RasterInfo(3, 4, 3)
    gray_as_rgb = png_bytes(PILImage.fromarray(np.zeros((3, 4, 3), np.uint8)), "JPEG")
    assert read_raster_info(Path("x.jpg"), gray_as_rgb) == RasterInfo(3, 4, 1)
    gray = png_bytes(PILImage.fromarray(np.zeros((3, 4), np.uint8)))
    assert read_raster_info(Path("g.png"), gray) == RasterInfo(3, 4, 1)


def test_real_knee_png_and_chest_jpeg_are_grayscale(shared_data_dir: Path) -> None:
    knee = next((shared_data_dir / "cls" / "knee_oa_kl_grade" / "train" / "0").glob("*.png"))
    chest = next((shared_data_dir / "cxr_pneumonia" / "train" / "NORMAL").glob("*.jpeg"))
    for path in (knee, chest):  # the chest JPEG is RGB with three equal channels
        image = read_raster(path)
        assert (image.layout, image.shape) == (ImageLayout.YX, (224, 224))
        assert read_raster_info(path).samples_per_pixel == 1  # so routing sees grayscale


def test_real_microscopy_jpeg_is_colour(shared_data_dir: Path) -> None:
    path = next((shared_data_dir / "det" / "bccd_blood_cells" / "JPEGImages").glob("*.jpg"))
    assert read_raster(path).layout is ImageLayout.YXC


def test_truncated_jpeg_is_a_truncated_file_error() -> None:
    data = png_bytes(PILImage.fromarray(RNG.integers(0, 256, (64, 64), np.uint8)), "JPEG")
    with pytest.raises(TruncatedFileError) as caught:
        read_raster(Path("cut.jpg"), data[: len(data) // 2])
    assert str(caught.value).startswith("cut.jpg: ")


def test_junk_is_an_unsupported_format() -> None:
    with pytest.raises(UnsupportedFormatError, match="not an image"):
        read_raster(Path("junk.png"), b"definitely not a PNG")


def test_write_png_round_trips(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, (9, 4, 3), dtype=np.uint8)
    path = tmp_path / "out.png"
    write_png(path, rgb)
    assert np.array_equal(read_raster(path).array, rgb)


def test_write_png_refuses_float_arrays(tmp_path: Path) -> None:
    with pytest.raises(IncompatibleInputError, match="uint8"):
        write_png(tmp_path / "bad.png", np.zeros((4, 4, 3), dtype=np.float32))
