"""Stored instances the way a DICOMweb viewer asks for them (PS3.18 WADO-RS).

- :func:`web_metadata`: the instance's DICOM JSON without bulk data (pixel data and large
  binary values left out), with the Image Pixel attributes describing the frames exactly
  as :func:`web_frame` sends them.
- :func:`web_frame`: one frame decoded (whatever the stored transfer syntax) and sent
  uncompressed in :data:`FRAME_TRANSFER_SYNTAX`, so a browser needs no codec: grayscale
  keeps its stored values (the viewer applies Rescale Slope/Intercept and the window);
  colour is sent as interleaved RGB.

Pixel Spacing (and Imager Pixel Spacing) with a zero, negative or non-finite value, and an
Image Orientation (Patient) that is not two non-zero, non-parallel direction cosines, are
left out of the metadata, at every nesting level: a viewer given them divides by zero or
builds a degenerate plane, where without them it falls back to its defaults (1 mm, axial).

Decoded instances are cached (a few, by path and modification time), because a viewer
asks for the frames of a multi-frame object one by one.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels.processing import convert_color_space
from pydicom.uid import ExplicitVRLittleEndian

from radlens.errors import NotFoundError, PixelDataError
from radlens.io.dicom import read_stored_pixels
from radlens.warning_scopes import ignoring

FRAME_TRANSFER_SYNTAX = str(ExplicitVRLittleEndian)
_BULK_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
_MAX_INLINE_BYTES = 64 * 1024
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_CACHED_INSTANCES = 4
_SPACING_TAGS = ("00280030", "00181164")  # Pixel Spacing, Imager Pixel Spacing (PS3.3 10.7.1.3)
_ORIENTATION_TAG = "00200037"  # Image Orientation (Patient), PS3.3 C.7.6.2.1.1
_MIN_SINE = 1e-3  # row and column directions closer to parallel than this are no plane


def web_metadata(path: Path) -> dict[str, Any]:
    """DICOM JSON (PS3.18 F.2) of a stored instance, for the viewer.

    Raises:
        InputError: the file cannot be read or decoded.
    """
    ds, values, photometric = _decoded(str(path), path.stat().st_mtime_ns)
    header = Dataset()
    for element in ds:
        if element.keyword in _PIXEL_KEYWORDS:
            continue
        if element.VR in _BULK_VRS and _length(element.value) > _MAX_INLINE_BYTES:
            continue  # large private or overlay data: not needed to display the image
        header.add(element)
    _describe_sent_pixels(header, values, photometric)
    with ignoring():  # odd values in real files must not stop the viewer
        document: dict[str, Any] = header.to_json_dict(bulk_data_threshold=_MAX_INLINE_BYTES)
    _drop_unusable_geometry(document)
    return document


def web_frame(path: Path, number: int) -> bytes:
    """Frame ``number`` (from 1) of a stored instance, uncompressed little endian.

    Raises:
        NotFoundError: the instance has no such frame.
        InputError: the file cannot be read or decoded.
    """
    _, values, photometric = _decoded(str(path), path.stat().st_mtime_ns)
    if not 1 <= number <= values.shape[0]:
        raise NotFoundError(f"no frame {number}; the instance has {values.shape[0]}")
    frame = _sendable(values[number - 1], photometric)
    return np.ascontiguousarray(frame, dtype=frame.dtype.newbyteorder("<")).tobytes()


def header_of(path: Path) -> Dataset:
    """The stored instance's header, without pixel data."""
    with ignoring():
        return dcmread(path, stop_before_pixels=True, force=True)


@lru_cache(maxsize=_CACHED_INSTANCES)
def _decoded(path: str, mtime_ns: int) -> tuple[Dataset, np.ndarray, str]:
    del mtime_ns  # part of the cache key only
    return read_stored_pixels(Path(path))


def _sendable(frame: np.ndarray, photometric: str) -> np.ndarray:
    if frame.ndim == 3 and photometric not in ("RGB", ""):
        frame = convert_color_space(frame, photometric, "RGB")
    if frame.dtype == np.bool_ or frame.dtype.itemsize > 4 or frame.dtype.kind == "f":
        raise PixelDataError(None, f"pixels of type {frame.dtype} cannot be sent as frames")
    return frame


def _describe_sent_pixels(header: Dataset, values: np.ndarray, photometric: str) -> None:
    samples = 3 if values.ndim == 4 else 1
    dtype = values.dtype
    header.SamplesPerPixel = samples
    header.BitsAllocated = dtype.itemsize * 8
    stored = int(header.get("BitsStored", dtype.itemsize * 8))
    header.BitsStored = min(stored, dtype.itemsize * 8)
    header.HighBit = header.BitsStored - 1
    header.PixelRepresentation = 1 if dtype.kind == "i" else 0
    if samples == 3:
        header.PhotometricInterpretation = "RGB"
        header.PlanarConfiguration = 0
    else:
        header.PhotometricInterpretation = photometric or "MONOCHROME2"
        if "PlanarConfiguration" in header:
            del header.PlanarConfiguration
    header.NumberOfFrames = values.shape[0]


def _drop_unusable_geometry(document: dict[str, Any]) -> None:
    """Remove spacings and orientations a viewer cannot use, here and in every sequence item
    (e.g. the functional groups of an enhanced multi-frame object)."""
    for tag in _SPACING_TAGS:
        if tag in document and not _usable_spacing(_numbers(document[tag], 2)):
            del document[tag]
    orientation = document.get(_ORIENTATION_TAG)
    if orientation is not None and not _usable_orientation(_numbers(orientation, 6)):
        del document[_ORIENTATION_TAG]
    for element in document.values():
        if isinstance(element, dict) and element.get("vr") == "SQ":
            for item in element.get("Value") or []:
                if isinstance(item, dict):
                    _drop_unusable_geometry(item)


def _numbers(element: dict[str, Any], count: int) -> list[float] | None:
    """The element's ``count`` values as finite floats, or None when it has other values."""
    values = element.get("Value")
    if not isinstance(values, list) or len(values) != count:
        return None
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return numbers if all(math.isfinite(n) for n in numbers) else None


def _usable_spacing(spacing: list[float] | None) -> bool:
    return spacing is not None and all(s > 0 for s in spacing)


def _usable_orientation(cosines: list[float] | None) -> bool:
    if cosines is None:
        return False
    row, column = np.array(cosines[:3]), np.array(cosines[3:])
    lengths = float(np.linalg.norm(row) * np.linalg.norm(column))
    return lengths > 0 and float(np.linalg.norm(np.cross(row, column))) / lengths > _MIN_SINE


def _length(value: object) -> int:
    return len(value) if isinstance(value, (bytes, bytearray)) else 0
