"""DICOM pixel data to :class:`~radlens.domain.imaging.Image`: decode, LUTs, colour, geometry.

The order follows the DICOM grayscale pipeline (PS3.4 N.2): stored values -> Modality LUT
(Rescale Slope/Intercept or a Modality LUT Sequence, PS3.3 C.11.1) -> physical units.
The VOI stage is not applied; the default window is kept as :attr:`Image.window`.
MONOCHROME1 is inverted within the modality output range, so higher always means
brighter, and its window centre with it.

Colour comes out RGB ``uint8``. pydicom already converts YBR_FULL and YBR_FULL_422, and
the JPEG 2000 decoder already undoes YBR_RCT/YBR_ICT; this module reads the photometric
interpretation the decoder reports *after* decoding, so nothing is converted twice.

Decoders are pydicom's plugins (pylibjpeg-openjpeg, pylibjpeg-rle, pyjpegls, GDCM,
Pillow), plus one route of our own: 12-bit JPEG Extended goes straight to GDCM, because
pydicom's GDCM plugin refuses it and the only other plugin for it (pylibjpeg-libjpeg) is
GPL. GDCM reports no failure from Python, so every JPEG baseline/extended frame is
checked for a well-formed header (ISO/IEC 10918-1 B.2) before it is decoded.

Functions here take a dataset already read by :mod:`radlens.io.dicom` and a
``location`` that names the file in error messages.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Sequence

import gdcm
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, convert_color_space
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from radlens.domain.imaging import Geometry, Image, ImageLayout, Window
from radlens.errors import PixelDataError, UnsupportedTransferSyntaxError
from radlens.io.limits import DEFAULT_MAX_PIXEL_BYTES, check_pixel_size
from radlens.io.sandbox import run_isolated

# What pydicom's decoders raise on bad data or bad Image Pixel attributes.
_DECODE_ERRORS = (
    ValueError,
    RuntimeError,
    NotImplementedError,
    AttributeError,
    KeyError,
    TypeError,
    IndexError,
    OverflowError,
    EOFError,
    struct.error,
    MemoryError,
    StopIteration,  # fewer encapsulated frames than Number of Frames (pydicom's generator)
)
_SEQUENTIAL_SOF = (0xC0, 0xC1)  # baseline and extended sequential DCT
# The start-of-frame markers each JPEG transfer syntax allows (ISO/IEC 10918-1 B.1.1.3):
# GDCM aborts the process on a stream of another process than the syntax says.
_SOF_OF_SYNTAX = {
    JPEGBaseline8Bit: frozenset({0xC0, 0xC1}),
    JPEGExtended12Bit: frozenset({0xC0, 0xC1}),
    JPEGLossless: frozenset({0xC3}),
    JPEGLosslessSV1: frozenset({0xC3}),
}
# Decoding plugins tried in this process, in order. pydicom would try GDCM first for JPEG
# 2000 and JPEG-LS, and fall back to it when a plugin fails: GDCM runs only in the sandbox.
_IN_PROCESS_PLUGINS: dict[UID, tuple[str, ...]] = {
    RLELossless: ("pylibjpeg", "pydicom"),
    JPEG2000Lossless: ("pylibjpeg", "pillow"),
    JPEG2000: ("pylibjpeg", "pillow"),
    JPEGLSLossless: ("pyjpegls",),
    JPEGLSNearLossless: ("pyjpegls",),
}
_J2K_SYNTAXES = frozenset({JPEG2000Lossless, JPEG2000, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K})
_PRECISION_MIN, _PRECISION_MAX = 2, 16  # ISO/IEC 10918-1 B.2.2 (lossless 2-16, DCT 8/12)
_MARKERS_WITHOUT_LENGTH = frozenset({0x01, *range(0xD0, 0xD8)})
_US_REGION_CM = 3  # PhysicalUnitsX/YDirection: 3 = cm (PS3.3 C.8.5.5.1.15)

FloatArray = npt.NDArray[np.float32]


def dataset_to_image(
    ds: Dataset,
    location: str,
    transfer_syntax: UID,
    max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES,
) -> Image:
    """Decode the pixel data of a dataset into an :class:`Image`.

    Args:
        ds: a complete dataset (pixel data included) with its transfer syntax set.
        location: the file (``archive.zip!member`` for zip members), for messages.
        transfer_syntax: the transfer syntax of the pixel data.
        max_pixel_bytes: cap on the decoded size, checked before decoding.

    Raises:
        PixelDataError: pixel data missing, too short, undecodable, larger than the cap
            once decoded, or with Image Pixel attributes that make it impossible to decode.
        UnsupportedTransferSyntaxError: no installed decoder handles the syntax.
    """
    frames = number_of_frames(ds)
    if frames is None:
        raise PixelDataError(
            location,
            f"invalid Number of Frames (0028,0008) {ds.get('NumberOfFrames')!r}; "
            "cannot decode pixel data",
        )
    stored, photometric = _decode(ds, location, transfer_syntax, frames, max_pixel_bytes)
    colour = photometric not in ("MONOCHROME1", "MONOCHROME2")
    geometry = image_geometry(ds)
    uid = str(ds.get("SOPInstanceUID", ""))
    if colour:
        rgb = _to_rgb(stored, ds, photometric, location)
        layout = ImageLayout.FYXC if frames > 1 else ImageLayout.YXC
        array = rgb if frames > 1 else rgb[0]
        return Image(array, layout, geometry, units="RGB", source_uids=(uid,))
    if stored.ndim != 3:
        raise PixelDataError(
            location, f"expected one sample per pixel for {photometric}, decoded {stored.shape}"
        )
    values, window = _to_physical(stored, ds, frames, photometric)
    layout = ImageLayout.FYX if frames > 1 else ImageLayout.YX
    array = values if frames > 1 else values[0]
    return Image(array, layout, geometry, _units(ds), window, (uid,))


def number_of_frames(ds: Dataset) -> int | None:
    """Number of Frames (1 when absent), or None when the value is not a positive integer."""
    raw = ds.get("NumberOfFrames", 1)
    try:
        value = int(str(raw).strip() or 1)
    except ValueError:
        return None
    return value if value > 0 else None


def image_geometry(ds: Dataset) -> Geometry:
    """Spacing, origin and direction of one frame (2D).

    ``direction_lps`` is ``IOP[3:6] + IOP[0:3]``: the unit vector of array axis 0
    (down the rows, DICOM's *column* direction) then of axis 1 (along a row, DICOM's
    *row* direction), so it lists the axes in array order like ``spacing_mm``.
    """
    spacing = pixel_spacing_mm(ds)
    position = frame_position(ds, 0)
    orientation = image_orientation(ds)
    direction = None if orientation is None else (*orientation[3:], *orientation[:3])
    if spacing is None:
        return Geometry((1.0, 1.0), position, direction, spacing_known=False)
    return Geometry(spacing, position, direction)


def pixel_spacing_mm(ds: Dataset) -> tuple[float, float] | None:
    """(row_mm, col_mm) from the first tag that has a positive value, else None.

    Tried in order: Pixel Spacing, the Pixel Measures functional group (enhanced
    objects), Imager Pixel Spacing (projection radiography, at the detector), and the
    first ultrasound region calibrated in cm (PS3.3 C.8.5.5).
    """
    candidates = [ds.get("PixelSpacing")]
    measures = _functional_group(ds, "PixelMeasuresSequence", 0)
    if measures is not None:
        candidates.append(measures.get("PixelSpacing"))
    candidates.append(ds.get("ImagerPixelSpacing"))
    for value in candidates:
        pair = _positive_pair(value)
        if pair is not None:
            return pair
    for region in ds.get("SequenceOfUltrasoundRegions", []):
        units = (region.get("PhysicalUnitsXDirection"), region.get("PhysicalUnitsYDirection"))
        if units == (_US_REGION_CM, _US_REGION_CM):
            pair = _positive_pair([region.get("PhysicalDeltaY"), region.get("PhysicalDeltaX")])
            if pair is not None:
                return (pair[0] * 10.0, pair[1] * 10.0)
    return None


def image_orientation(ds: Dataset) -> tuple[float, float, float, float, float, float] | None:
    """Image Orientation (Patient), from the top level or the Plane Orientation group."""
    value = ds.get("ImageOrientationPatient")
    if value is None:
        group = _functional_group(ds, "PlaneOrientationSequence", 0)
        value = None if group is None else group.get("ImageOrientationPatient")
    numbers = _floats(value, 6)
    if numbers is None:
        return None
    row, col = np.array(numbers[:3]), np.array(numbers[3:])
    if np.linalg.norm(row) < 0.5 or np.linalg.norm(col) < 0.5:
        return None
    return (numbers[0], numbers[1], numbers[2], numbers[3], numbers[4], numbers[5])


def frame_position(ds: Dataset, frame: int) -> tuple[float, float, float] | None:
    """Image Position (Patient) of a frame, from the top level or the Plane Position group."""
    group = _functional_group(ds, "PlanePositionSequence", frame)
    value = ds.get("ImagePositionPatient") if group is None else group.get("ImagePositionPatient")
    numbers = _floats(value, 3)
    return None if numbers is None else (numbers[0], numbers[1], numbers[2])


def stored_values(
    ds: Dataset,
    location: str,
    transfer_syntax: UID,
    max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES,
) -> tuple[np.ndarray, str]:
    """The stored pixel values, frame axis first, and their photometric interpretation.

    No Modality LUT and no inversion: what a DICOM viewer applies itself.

    Raises:
        PixelDataError: the pixel data cannot be decoded.
        UnsupportedTransferSyntaxError: no installed decoder handles the syntax.
    """
    frames = number_of_frames(ds)
    if frames is None:
        raise PixelDataError(location, "invalid Number of Frames (0028,0008)")
    return _decode(ds, location, transfer_syntax, frames, max_pixel_bytes)


def _decode(
    ds: Dataset, location: str, transfer_syntax: UID, frames: int, max_pixel_bytes: int
) -> tuple[np.ndarray, str]:
    """Stored values, always with a frame axis first, and the photometric interpretation
    they are in after decoding. The decoded size is checked against ``max_pixel_bytes``
    before any decoder allocates it."""
    check_pixel_size(ds, location, max_pixel_bytes, frames)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if transfer_syntax in _SOF_OF_SYNTAX:
        samples, bits = int(ds.get("SamplesPerPixel", 1)), int(ds.get("BitsAllocated", 16))
        for frame in _frames(ds, location, frames):
            _check_jpeg(frame, location, _SOF_OF_SYNTAX[transfer_syntax], samples, bits)
        # GDCM decodes these, and aborts the process on some streams: see sandbox.py.
        args = (_pixel_module(ds, transfer_syntax), location, transfer_syntax, frames, photometric)
        return run_isolated(_decode_stored, *args, location=location)
    if transfer_syntax in _J2K_SYNTAXES:
        declared = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
        for frame in _frames(ds, location, frames):
            _check_j2k_size(frame, location, declared)
    available = tuple(get_decoder(transfer_syntax).available_plugins)
    failure: PixelDataError | None = None
    for plugin in _in_process_plugins(transfer_syntax, available):
        try:
            return _decode_stored(ds, location, transfer_syntax, frames, photometric, plugin)
        except PixelDataError as exc:
            failure = failure or exc
    if "gdcm" in available:  # the last resort, where an abort cannot hurt
        pixels = _pixel_module(ds, transfer_syntax)
        gdcm_args = (pixels, location, transfer_syntax, frames, photometric, "gdcm")
        try:
            return run_isolated(_decode_stored, *gdcm_args, location=location)
        except PixelDataError:
            if failure is None:
                raise
    # The first decoder's reason, chained to its exception, says most about the data.
    raise failure or PixelDataError(location, f"no decoder for {transfer_syntax.name}")


def _in_process_plugins(transfer_syntax: UID, available: tuple[str, ...]) -> tuple[str, ...]:
    """The decoding plugins to try in this process, in order ("" = pydicom's own)."""
    if not available:
        return ("",)  # native encodings: pydicom decodes them itself
    preferred = _IN_PROCESS_PLUGINS.get(transfer_syntax, available)
    return tuple(p for p in preferred if p in available and p != "gdcm")


def _pixel_module(ds: Dataset, transfer_syntax: UID) -> Dataset:
    """The Image Pixel attributes (group 0028) and pixel data (7FE0) of ``ds`` in a data
    set of their own, detached from the file it was read from, so it can be pickled."""
    out = Dataset()
    for group in (0x0028, 0x7FE0):
        for element in ds.group_dataset(group):
            out.add(element)
    out.file_meta = FileMetaDataset()
    out.file_meta.TransferSyntaxUID = transfer_syntax
    return out


def _decode_stored(
    ds: Dataset,
    location: str,
    transfer_syntax: UID,
    frames: int,
    photometric: str,
    plugin: str = "",
) -> tuple[np.ndarray, str]:
    if transfer_syntax == JPEGExtended12Bit and int(ds.get("BitsStored", 8)) > 8:
        return _decode_jpeg12_with_gdcm(ds, location, frames), photometric
    decoder = get_decoder(transfer_syntax)
    try:
        array, meta = decoder.as_array(ds, decoding_plugin=plugin)
    except _DECODE_ERRORS as exc:
        raise PixelDataError(
            location, f"cannot decode {transfer_syntax.name} pixel data: {_one_line(exc)}"
        ) from exc
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        # A Rust decoder's panic (pyo3's PanicException derives from BaseException).
        raise PixelDataError(
            location, f"the {transfer_syntax.name} decoder failed: {_one_line(exc)}"
        ) from exc
    if frames == 1:
        array = array[np.newaxis]
    return array, str(meta.get("photometric_interpretation", photometric)).upper()


def _check_j2k_size(frame: bytes, location: str, declared: int) -> None:
    """Refuse a JPEG 2000 codestream larger than the data set says (ISO/IEC 15444-1 A.5.1).

    The decoder allocates by the codestream's own image and tile size (SIZ), not by Rows
    and Columns: a few changed bytes made it take gigabytes (found by fuzzing).
    """
    at = frame.find(b"\xff\x4f\xff\x51", 0, 4096)  # SOC then SIZ (a JP2 wrapper may precede)
    if at < 0 or len(frame) < at + 4 + 38:
        return  # no codestream header to read: the decoder will refuse it
    xsiz, ysiz, xo, yo = struct.unpack(">4L", frame[at + 8 : at + 24])
    (components,) = struct.unpack(">H", frame[at + 40 : at + 42])
    width, height = xsiz - min(xo, xsiz), ysiz - min(yo, ysiz)
    if width * height * components > declared:
        raise PixelDataError(
            location,
            f"JPEG 2000 codestream of {width} x {height} x {components} is larger than "
            "Rows x Columns x Samples per Pixel; refused before decoding",
        )


def _frames(ds: Dataset, location: str, frames: int) -> list[bytes]:
    try:
        return list(generate_frames(ds.PixelData, number_of_frames=frames))
    except _DECODE_ERRORS as exc:
        raise PixelDataError(
            location, f"cannot split encapsulated pixel data into frames: {_one_line(exc)}"
        ) from exc


def _check_jpeg(
    frame: bytes, location: str, allowed_sof: frozenset[int], samples: int, bits_allocated: int
) -> None:
    """Refuse a JPEG frame whose header is malformed (ISO/IEC 10918-1 B.2), whose process
    is not the transfer syntax's, or whose component count is not Samples per Pixel."""
    if frame[:2] != b"\xff\xd8":
        raise PixelDataError(location, "invalid JPEG stream: no start-of-image marker")
    pos, sof = 2, 0
    while pos + 4 <= len(frame):
        if frame[pos] != 0xFF:
            raise PixelDataError(location, f"invalid JPEG stream: no marker at byte {pos}")
        marker = frame[pos + 1]
        if marker == 0xFF or marker in _MARKERS_WITHOUT_LENGTH:
            pos += 1 if marker == 0xFF else 2
            continue
        length = int.from_bytes(frame[pos + 2 : pos + 4], "big")
        segment = frame[pos + 4 : pos + 2 + length]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            sof = marker
            _check_sof(marker, segment, location, allowed_sof, samples, bits_allocated)
        if marker == 0xDA:
            if not sof:
                raise PixelDataError(location, "invalid JPEG stream: start of scan before frame")
            n = segment[0] if segment else 0
            params = tuple(segment[1 + 2 * n : 4 + 2 * n])
            if sof in _SEQUENTIAL_SOF and params != (0, 63, 0):
                raise PixelDataError(
                    location,
                    f"invalid JPEG stream: start-of-scan parameters Ss,Se,AhAl={params} for a "
                    "sequential DCT process (ISO/IEC 10918-1 B.2.3 requires (0, 63, 0))",
                )
            return
        pos += 2 + length
    raise PixelDataError(location, "invalid JPEG stream: no start-of-scan marker")


def _check_sof(
    marker: int,
    segment: bytes,
    location: str,
    allowed: frozenset[int],
    samples: int,
    bits_allocated: int,
) -> None:
    """A start-of-frame segment (B.2.2) that fits the transfer syntax and the data set."""
    if marker not in allowed:
        raise PixelDataError(
            location,
            f"JPEG stream of process SOF{marker - 0xC0}, not the one its transfer syntax names",
        )
    precision = segment[0] if segment else 0
    if not _PRECISION_MIN <= precision <= min(bits_allocated, _PRECISION_MAX):
        raise PixelDataError(
            location,
            f"JPEG frame header with sample precision {precision} for {bits_allocated} "
            "bits allocated",
        )
    components = segment[5] if len(segment) > 5 else 0
    if len(segment) < 6 + 3 * components or components != samples:
        raise PixelDataError(
            location,
            f"JPEG frame header with {components} component(s) for {samples} sample(s) per pixel",
        )


def _decode_jpeg12_with_gdcm(ds: Dataset, location: str, frames: int) -> np.ndarray:
    rows, columns = int(ds.Rows), int(ds.Columns)
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise UnsupportedTransferSyntaxError(
            location, "12-bit JPEG Extended colour pixel data is not supported"
        )
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    out = np.empty((frames, rows, columns), dtype=np.int16 if signed else np.uint16)
    for index, frame in enumerate(_frames(ds, location, frames)):
        buffer = _gdcm_jpeg_frame(frame, ds, rows, columns)
        if len(buffer) != rows * columns * 2:
            raise PixelDataError(
                location, f"GDCM returned {len(buffer)} bytes for a {rows}x{columns} frame"
            )
        out[index] = np.frombuffer(buffer, dtype=out.dtype).reshape(rows, columns)
    return out


def _gdcm_jpeg_frame(frame: bytes, ds: Dataset, rows: int, columns: int) -> bytes:
    """Decode one 12-bit JPEG frame with GDCM (the way pydicom's GDCM plugin does)."""
    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(frame)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetValue(fragments.__ref__())
    image = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((columns, rows, 1))
    image.SetDataElement(element)
    pi_type = gdcm.PhotometricInterpretation.GetPIType(str(ds.PhotometricInterpretation))
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(pi_type))
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGExtendedProcess2_4))
    bits = int(ds.BitsStored)
    representation = int(ds.get("PixelRepresentation", 0))
    image.SetPixelFormat(gdcm.PixelFormat(1, 16, bits, bits - 1, representation))
    # GDCM hands back char* as str; surrogateescape restores the raw bytes.
    return bytes(image.GetBuffer().encode("utf-8", "surrogateescape"))


def _to_physical(
    stored: np.ndarray, ds: Dataset, frames: int, photometric: str
) -> tuple[FloatArray, Window | None]:
    """Apply the Modality LUT per frame; invert MONOCHROME1; keep the default window."""
    if "ModalityLUTSequence" in ds:
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
        lut = np.asarray(ds.ModalityLUTSequence[0].LUTData, dtype=np.float32)
        low = np.full((frames, 1, 1), lut.min(), dtype=np.float32)
        high = np.full((frames, 1, 1), lut.max(), dtype=np.float32)
    else:
        slope, intercept = _rescale(ds, frames)
        values = stored.astype(np.float32) * slope + intercept
        smin, smax = _stored_range(ds)
        ends = (np.float32(smin) * slope + intercept, np.float32(smax) * slope + intercept)
        low, high = np.minimum(*ends), np.maximum(*ends)
    window = _window(ds)
    if photometric == "MONOCHROME1":
        values = (low + high) - values
        if window is not None:
            window = Window(float(low[0, 0, 0] + high[0, 0, 0]) - window.center, window.width)
    return values.astype(np.float32, copy=False), window


def _rescale(ds: Dataset, frames: int) -> tuple[FloatArray, FloatArray]:
    """Rescale slope and intercept per frame, shaped (frames, 1, 1)."""
    slopes = np.ones((frames, 1, 1), dtype=np.float32)
    intercepts = np.zeros((frames, 1, 1), dtype=np.float32)
    for frame in range(frames):
        group = _functional_group(ds, "PixelValueTransformationSequence", frame)
        source = ds if group is None or "RescaleSlope" not in group else group
        slope = _number(source.get("RescaleSlope"))
        intercept = _number(source.get("RescaleIntercept"))
        slopes[frame] = 1.0 if slope is None or slope == 0 else slope
        intercepts[frame] = 0.0 if intercept is None else intercept
    return slopes, intercepts


def _stored_range(ds: Dataset) -> tuple[int, int]:
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _window(ds: Dataset) -> Window | None:
    """The first default window: Window Center/Width, Frame VOI LUT, or a VOI LUT Sequence."""
    source: Dataset | None = ds if "WindowCenter" in ds else None
    if source is None:
        source = _functional_group(ds, "FrameVOILUTSequence", 0)
    if source is not None and "WindowCenter" in source:
        center = _number(_first(source.get("WindowCenter")))
        width = _number(_first(source.get("WindowWidth")))
        if center is not None and width is not None and width > 0:
            return Window(center, width)
    if "VOILUTSequence" in ds:
        return _window_from_voi_lut(ds.VOILUTSequence[0])
    return None


def _window_from_voi_lut(item: Dataset) -> Window | None:
    """The linear window that spans the rising part of a VOI LUT (PS3.3 C.11.2.1.1)."""
    try:
        entries, first_mapped, _ = (int(v) for v in item.LUTDescriptor)
        lut = np.asarray(item.LUTData, dtype=np.float64)
    except _DECODE_ERRORS:
        return None
    if lut.size < 2 or lut.max() == lut.min():
        return None
    entries = entries or 65536
    low_index = int(np.flatnonzero(lut == lut.min())[-1])
    high_index = int(np.flatnonzero(lut == lut.max())[0])
    if high_index <= low_index:
        low_index, high_index = 0, min(entries, lut.size) - 1
    low, high = first_mapped + low_index, first_mapped + high_index
    # Linear window: c - 0.5 - (w-1)/2 = low and c - 0.5 + (w-1)/2 = high.
    return Window(center=(low + high + 1) / 2.0, width=float(high - low + 1))


def _units(ds: Dataset) -> str:
    """Units of CT are HU unless Rescale Type says otherwise ("US" = unspecified)."""
    if str(ds.get("Modality", "")).upper() != "CT":
        return "modality"
    group = _functional_group(ds, "PixelValueTransformationSequence", 0)
    rescale_type = str((group or ds).get("RescaleType", "")).strip().upper()
    return "HU" if rescale_type in ("", "HU") else "modality"


def _to_rgb(stored: np.ndarray, ds: Dataset, photometric: str, location: str) -> np.ndarray:
    """Frames of any colour photometric interpretation as RGB uint8, shape (F, Y, X, 3)."""
    if photometric == "PALETTE COLOR":
        _palette_data_to_native_order(ds)
        try:
            rgb = np.asarray(apply_color_lut(stored, ds))
        except _DECODE_ERRORS as exc:
            raise PixelDataError(
                location, f"cannot apply the palette colour LUT: {_one_line(exc)}"
            ) from exc
        bits = 16 if rgb.dtype.itemsize > 1 else 8
    elif photometric in ("YBR_FULL", "YBR_FULL_422"):
        rgb = np.asarray(convert_color_space(stored, photometric, "RGB"))
        bits = int(ds.get("BitsStored", 8))
    elif photometric == "RGB":
        rgb = stored
        bits = int(ds.get("BitsStored", 8))
    else:
        raise PixelDataError(
            location, f"photometric interpretation {photometric!r} is not supported"
        )
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise PixelDataError(location, f"expected 3 colour samples, decoded shape {rgb.shape}")
    if bits > 8:
        rgb = np.right_shift(rgb.astype(np.uint32), bits - 8)
    out: np.ndarray = np.clip(rgb, 0, 255).astype(np.uint8)
    return out


def _palette_data_to_native_order(ds: Dataset) -> None:
    """Byte-swap 16-bit palette LUT data of a big-endian data set, in place.

    pydicom 3.0's ``apply_color_lut`` reads (non-segmented) LUT Data in the machine's
    byte order whatever the transfer syntax, so OBXXXX1A_expb comes out with its
    colours' bytes swapped. Segmented LUTs are read correctly and are left alone.
    """
    if ds.original_encoding[1] is not False or sys.byteorder != "little":
        return
    for colour in ("Red", "Green", "Blue", "Alpha"):
        keyword = f"{colour}PaletteColorLookupTableData"
        data = ds.get(keyword)
        if isinstance(data, bytes) and len(data) % 2 == 0:
            swapped = np.frombuffer(data, dtype=">u2").astype("<u2").tobytes()
            ds[keyword].value = swapped


def _functional_group(ds: Dataset, keyword: str, frame: int) -> Dataset | None:
    """The item of a functional group macro for a frame: per-frame first, then shared."""
    for sequence_keyword, index in (
        ("PerFrameFunctionalGroupsSequence", frame),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        groups = ds.get(sequence_keyword)
        if groups is None or index >= len(groups):
            continue
        macro = groups[index].get(keyword)
        if macro:
            item: Dataset = macro[0]
            return item
    return None


def _first(value: object) -> object:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return value[0] if len(value) else None
    return value


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _floats(value: object, count: int) -> list[float] | None:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or len(value) != count:
        return None
    numbers = [_number(v) for v in value]
    return None if any(n is None for n in numbers) else [float(n or 0.0) for n in numbers]


def _positive_pair(value: object) -> tuple[float, float] | None:
    numbers = _floats(value, 2)
    if numbers is None or numbers[0] <= 0 or numbers[1] <= 0:
        return None
    return (numbers[0], numbers[1])


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
