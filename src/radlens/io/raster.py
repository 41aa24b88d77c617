"""PNG and JPEG images (Pillow): :func:`read_raster` / :func:`write_png`.

A raster has no patient geometry: spacing is 1 mm with ``spacing_known=False``.
EXIF orientation is applied, alpha is dropped, palette images are expanded. An RGB image
whose three channels are equal everywhere is grayscale saved as colour, and is read as
grayscale (layout YX, float32).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from radlens.domain.imaging import Geometry, Image, ImageLayout
from radlens.errors import (
    IncompatibleInputError,
    PixelDataError,
    TruncatedFileError,
    UnsupportedFormatError,
)
from radlens.warning_scopes import raising

_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_UNKNOWN_SPACING = Geometry((1.0, 1.0), spacing_known=False)


@dataclass(frozen=True)
class RasterInfo:
    """Size of a raster image, from its header only.

    Attributes:
        rows, columns: image size in pixels.
        samples_per_pixel: 1 for a grayscale mode, 3 for colour.
    """

    rows: int
    columns: int
    samples_per_pixel: int


def read_raster_info(path: Path, data: bytes | None = None) -> RasterInfo:
    """Read the size of a PNG/JPEG, decoding its pixels only when its mode is colour (to
    tell a grayscale image saved as colour, read as grayscale by :func:`read_raster`).

    Raises:
        UnsupportedFormatError: not an image Pillow can identify.
    """
    with _open(path, data) as image:
        samples = 1 if image.mode in _GRAY_MODES else 3
        if samples == 3:
            # Undecodable: read_raster names the problem when the pixels are read.
            with contextlib.suppress(OSError):
                samples = 1 if _equal_channels(np.asarray(image.convert("RGB"))) else 3
        return RasterInfo(rows=image.height, columns=image.width, samples_per_pixel=samples)


def _equal_channels(rgb: np.ndarray) -> bool:
    return np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])


def read_raster(path: Path, data: bytes | None = None) -> Image:
    """Read a PNG or JPEG as an :class:`Image` (YX float32 grayscale, or YXC uint8 RGB).

    Args:
        path: the file (for a zip member, the name shown in errors).
        data: the file's bytes, when already in memory.

    Raises:
        UnsupportedFormatError: not an image Pillow can read, or too large.
        TruncatedFileError: the file ends early.
        PixelDataError: the image data cannot be decoded.

    Example:
        >>> read_raster(Path("knee.png")).layout.value  # doctest: +SKIP
        'yx'
    """
    with _open(path, data) as image:
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
        except OSError as exc:
            if "truncated" in str(exc):
                raise TruncatedFileError(path, str(exc)) from exc
            raise PixelDataError(path, f"cannot decode image data: {exc}") from exc
        if upright.mode in _GRAY_MODES:
            gray = upright.convert("F") if upright.mode in ("1", "LA", "La") else upright
            array = np.asarray(gray, dtype=np.float32)
            return Image(array, ImageLayout.YX, _UNKNOWN_SPACING)
        rgb = np.asarray(upright.convert("RGB"), dtype=np.uint8)
    if _equal_channels(rgb):
        return Image(rgb[..., 0].astype(np.float32), ImageLayout.YX, _UNKNOWN_SPACING)
    return Image(np.ascontiguousarray(rgb), ImageLayout.YXC, _UNKNOWN_SPACING, units="RGB")


def write_png(path: Path, rgb_uint8: np.ndarray) -> None:
    """Write an RGB (H, W, 3) or grayscale (H, W) uint8 array as a PNG.

    Raises:
        IncompatibleInputError: the array is not uint8 of one of those shapes.

    Example:
        >>> write_png(Path("overlay.png"), np.zeros((4, 4, 3), np.uint8))  # doctest: +SKIP
    """
    array = np.asarray(rgb_uint8)
    colour = array.ndim == 3 and array.shape[-1] == 3
    if array.dtype != np.uint8 or not (colour or array.ndim == 2):
        raise IncompatibleInputError(
            path, f"write_png needs uint8 (H, W, 3) or (H, W), got {array.dtype} {array.shape}"
        )
    # zlib level 1: a quarter of the time of the default 6 for about 20% larger files,
    # which matters more for a reader waiting on an overlay than the bytes do.
    PILImage.fromarray(np.ascontiguousarray(array)).save(path, format="PNG", compress_level=1)


def _open(path: Path, data: bytes | None) -> PILImage.Image:
    """Open lazily (header only); an oversize image is refused, not just warned about."""
    with raising(PILImage.DecompressionBombWarning):
        try:
            return PILImage.open(io.BytesIO(data) if data is not None else path)
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
            raise UnsupportedFormatError(path, f"image too large: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise UnsupportedFormatError(path, "not an image Pillow can identify") from exc
        except OSError as exc:
            raise UnsupportedFormatError(path, f"cannot open image: {exc}") from exc
