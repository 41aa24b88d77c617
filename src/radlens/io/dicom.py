"""DICOM files: headers without pixels (:func:`read_instance`) and images (:func:`decode_instance`).

This is the one place where pydicom's exceptions and warnings become radlens's:

* not DICOM -> :class:`~radlens.errors.NotDicomError`; a file that ends inside its
  data set -> :class:`~radlens.errors.TruncatedFileError`;
* no file meta (PS3.10 7.1) -> read with ``force=True`` and one :class:`DicomReadWarning`.
  Such a file counts as DICOM only when the forced read finds a SOP Instance UID;
* pixel data missing, short or undecodable, or Image Pixel attributes that break
  decoding -> :class:`~radlens.errors.PixelDataError`; a syntax no installed decoder
  handles -> :class:`~radlens.errors.UnsupportedTransferSyntaxError`; decoding an object
  without pixels (SR, RT plan, waveform) -> :class:`~radlens.errors.NotAnImageError`.

pydicom's own warnings are caught around every pydicom call and come out as a single
:class:`DicomReadWarning` per call, whose message starts with the file. Every error is
``"<file>: <reason>"`` on one line and chains the pydicom exception.

Files inside a zip are read from bytes (``data=``); their instances keep the zip in
``path`` and the member name in ``member``.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels.decoders.base import get_decoder
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGExtended12Bit,
)

from radlens.domain.imaging import Image, Instance, Patient, Series, Study
from radlens.errors import (
    InputError,
    NotAnImageError,
    NotDicomError,
    PixelDataError,
    TruncatedFileError,
    UnsupportedTransferSyntaxError,
)
from radlens.io.archive import read_member
from radlens.io.formats import stored_bytes
from radlens.io.limits import (
    DEFAULT_LIMITS,
    ReadLimits,
    check_pixel_bytes,
    check_structure,
    decoded_pixel_bytes,
)
from radlens.io.pixels import (
    dataset_to_image,
    frame_position,
    image_orientation,
    number_of_frames,
    stored_values,
)
from radlens.io.uids import uid_from
from radlens.warning_scopes import ignoring, recording

_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel, Float and Double Float Pixel Data
_PIXEL_TAG_BYTES = frozenset(
    struct.pack(fmt, 0x7FE0, element)
    for fmt in ("<HH", ">HH")
    for element in (0x0010, 0x0008, 0x0009)
)
_HEADER_DEFER_BYTES = 64 * 1024  # header reads leave values larger than this on disk
_UNDEFINED_LENGTH = 0xFFFFFFFF
_EOF_BEFORE_DELIMITER = "End of file reached before delimiter"
_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY]?)\s*$", re.IGNORECASE)
_YEARS_PER_UNIT = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0, "": 1.0}
_MAX_AGE_YEARS = 150.0
# pydicom quotes the offending value, which may be a name or a date: keep it out.
_INVALID_VALUE = re.compile(r"Invalid value for VR (\w+):.*?(?:for each VR\.|$)", re.DOTALL)
# What pydicom may raise while parsing a data set, forced reads of junk included.
_READ_ERRORS = (
    InvalidDicomError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    OverflowError,
    NotImplementedError,
    EOFError,
    OSError,
    struct.error,
    UnicodeDecodeError,
    RecursionError,  # nesting the structure check could not follow (limits.py)
    MemoryError,
    BytesLengthException,  # a value whose length does not fit its VR
    zlib.error,  # a deflated data set cut short
)
# pydicom quotes the raw bytes of a value whose length does not fit its VR: keep them out.
_RAW_VALUE = re.compile(r"Instead received b(['\"]).*?\1 with length", re.DOTALL)


class DicomReadWarning(UserWarning):
    """A DICOM file was read, but not as written (no file meta, invalid values, ...)."""


@dataclass(frozen=True)
class DicomHeader:
    """What one DICOM file says about itself, without its pixels.

    Attributes:
        instance: the object itself.
        series: its series, with ``instances == (instance,)``.
        study: its study and patient, with ``series == (series,)``.
    """

    instance: Instance
    series: Series
    study: Study


@dataclass(frozen=True)
class _Read:
    ds: Dataset
    notes: tuple[str, ...]
    has_pixels: bool


def read_instance(
    path: Path, data: bytes | None = None, member: str = "", *, limits: ReadLimits = DEFAULT_LIMITS
) -> DicomHeader:
    """Read the header of a DICOM file (pixel data skipped, large values deferred).

    Args:
        path: the file, or the zip archive when ``member`` is given.
        data: the file's bytes, when already in memory (zip members).
        member: the member name inside the zip at ``path``, or "".
        limits: caps on sequence nesting, inflated size and decoded pixel size.

    Only element headers of the pixel data are read, which is enough to tell that they
    are there and that the file holds all of them.

    Raises:
        NotDicomError: not DICOM, no SOP Instance UID, sequences nested deeper than the
            limit, or a deflate bomb.
        TruncatedFileError: the file ends before its data set does.
        PixelDataError: the pixel data are visibly cut short, Number of Frames is not
            a positive integer, or they would decode past ``limits.max_pixel_bytes``.
        InputError: the file cannot be opened.

    Example:
        >>> header = read_instance(Path("CT_small.dcm"))  # doctest: +SKIP
        >>> header.series.modality, header.instance.rows
        ('CT', 128)
    """
    location = f"{path}!{member}" if member else str(path)
    with recording() as caught:
        read = _read(location, path, data, header_only=True, limits=limits)
        with _attributes_read(location, NotDicomError):
            header, notes = _header(read, location, path, member, limits)
    _warn(location, [*read.notes, *notes, *_messages(caught)])
    return header


def read_dataset(instance: Instance, *, pixels: bool = False) -> Dataset:
    """The pydicom data set of an instance, without its pixel data unless ``pixels``.

    For the objects that join the instance's study (``report/``: SR, SEG, Parametric Map):
    they copy patient, study and geometry attributes from it. ``pixels=True`` reads the
    whole file, pixel data included and checked complete (``privacy/``: de-identification
    writes the file again). Read warnings were already reported by the scan, so none are
    raised here.

    Raises:
        InputError: the file cannot be read (typed subclass).
    """
    data = read_member(instance.path, instance.member) if instance.member else None
    with ignoring():  # read warnings are reported where the file is first read
        return _read(instance.location, instance.path, data, header_only=not pixels).ds


def decode_instance(
    instance: Instance, data: bytes | None = None, *, limits: ReadLimits = DEFAULT_LIMITS
) -> Image:
    """Decode the pixel data of an instance into an :class:`Image` in physical units.

    Grayscale comes out float32 after the Modality LUT (HU for CT), MONOCHROME1 inverted;
    colour comes out RGB uint8. One frame gives layout YX/YXC, several FYX/FYXC.

    Args:
        instance: from :func:`read_instance`.
        data: the file's bytes, when already in memory; zip members are read from the
            archive when not given.
        limits: caps checked before parsing and before decoding.

    Raises:
        NotAnImageError: the object holds no pixel data (SR, RT plan, waveform).
        PixelDataError: pixel data missing, too short, undecodable, or over
            ``limits.max_pixel_bytes`` once decoded (refused before decoding).
        UnsupportedTransferSyntaxError: no installed decoder handles the syntax.

    Example:
        >>> image = decode_instance(read_instance(Path("CT_small.dcm")).instance)  # doctest: +SKIP
        >>> image.units, image.layout.value, image.array.dtype
        ('HU', 'yx', dtype('float32'))
    """
    location = instance.location
    if not instance.has_pixels:
        raise NotAnImageError(
            location, f"no pixel data in this {_sop_name(instance.sop_class_uid)} object"
        )
    if data is None and instance.member:
        data = read_member(instance.path, instance.member)
    with recording() as caught:
        read = _read(location, instance.path, data, header_only=False, limits=limits)
        if not read.has_pixels:
            cut = any(_EOF_BEFORE_DELIMITER in m for m in _messages(caught))
            raise PixelDataError(
                location,
                "pixel data end before their sequence delimiter (file cut short)"
                if cut
                else "no pixel data element",
            )
        with _attributes_read(location, PixelDataError):
            syntax = _pixel_transfer_syntax(read.ds, location)
            image = dataset_to_image(read.ds, location, syntax, limits.max_pixel_bytes)
    _warn(location, _messages(caught))
    return image


def read_stored_pixels(path: Path) -> tuple[Dataset, np.ndarray, str]:
    """The data set of a stored file, its stored pixel values (frame axis first) and the
    photometric interpretation they are in after decoding (for DICOMweb frames).

    Raises:
        InputError: the file cannot be read or its pixels decoded (typed subclass).
    """
    location = str(path)
    with ignoring():  # read warnings are reported where the file is first read
        read = _read(location, path, None, header_only=False)
        if not read.has_pixels:
            raise NotAnImageError(location, "no pixel data")
        with _attributes_read(location, PixelDataError):
            syntax = _pixel_transfer_syntax(read.ds, location)
            values, photometric = stored_values(read.ds, location, syntax)
    return read.ds, values, photometric


def read_frame_positions(
    instance: Instance, data: bytes | None = None
) -> tuple[tuple[float, float, float], ...]:
    """Image Position (Patient) of every frame of a multi-frame object, in frame order.

    Returns an empty tuple when any frame lacks a position (PS3.3 C.7.6.16.2.3).
    """
    location = instance.location
    if data is None and instance.member:
        data = read_member(instance.path, instance.member)
    with ignoring():  # read warnings are reported where the file is first read
        read = _read(location, instance.path, data, header_only=True)
        with _attributes_read(location, NotDicomError):
            return _all_frame_positions(read.ds, instance.frames)


def read_slice_spacing(instance: Instance, data: bytes | None = None) -> float | None:
    """Spacing Between Slices of a multi-frame object (shared Pixel Measures, else top level).

    Returns None when absent or not a positive number.
    """
    if data is None and instance.member:
        data = read_member(instance.path, instance.member)
    with ignoring():  # read warnings are reported where the file is first read
        ds = _read(instance.location, instance.path, data, header_only=True).ds
    holders = [ds]
    for shared in ds.get("SharedFunctionalGroupsSequence", None) or []:
        holders = [*(shared.get("PixelMeasuresSequence", None) or []), ds]
    for holder in holders:
        try:
            value = float(holder.get("SpacingBetweenSlices", 0) or 0)
        except (TypeError, ValueError):
            continue
        if value > 0:
            return value
    return None


def patient_age_years(age: str, birth_date: str = "", study_date: str = "") -> float | None:
    """Age in years from Patient's Age (``"058Y"``, ``"006M"``), else from the two dates.

    Example:
        >>> patient_age_years("006M"), patient_age_years("", "20000101", "20100101")
        (0.5, 10.0)
    """
    match = _AGE.match(age or "")
    if match:
        years = int(match.group(1)) * _YEARS_PER_UNIT[match.group(2).upper()]
        return round(years, 2)
    born, seen = _parse_date(birth_date), _parse_date(study_date)
    if born is None or seen is None or seen < born:
        return None
    years = seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day))
    return float(years) if years <= _MAX_AGE_YEARS else None


@contextmanager
def _attributes_read(location: str, error: type[InputError]) -> Iterator[None]:
    """Turn what pydicom raises when it converts an element on access (an unknown VR, a
    value that does not parse) into ``error``; radlens's own errors pass through."""
    try:
        yield
    except InputError:
        raise
    except _READ_ERRORS as exc:
        reason = _INVALID_VALUE.sub(r"invalid value for VR \1 (value withheld)", str(exc))
        raise error(location, f"an attribute cannot be read: {_one_line(reason)}") from exc


def _messages(caught: list[warnings.WarningMessage]) -> list[str]:
    return [
        _one_line(_INVALID_VALUE.sub(r"invalid value for VR \1 (value withheld)", str(w.message)))
        for w in caught
    ]


def _warn(location: str, notes: list[str]) -> None:
    if notes:
        unique = "; ".join(dict.fromkeys(notes))
        warnings.warn(f"{location}: {unique}", DicomReadWarning, stacklevel=3)


def _read(
    location: str,
    path: Path,
    data: bytes | None,
    *,
    header_only: bool,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> _Read:
    """Read a data set; force it when there is no file meta; check it is complete.

    The element structure is walked first (sequence depth, deflate bomb; see
    :mod:`radlens.io.limits`), so pydicom never recurses past the limit.
    """
    try:
        if data is None:
            data = stored_bytes(path)
        fp: BinaryIO = io.BytesIO(data) if data is not None else path.open("rb")
    except OSError as exc:
        raise InputError(location, f"cannot open file: {exc.strerror or exc}") from exc
    with fp:
        size = len(data) if data is not None else path.stat().st_size
        # Deferred values are re-read from the file by name when touched; bytes in
        # memory gain nothing from deferring (and a closed buffer cannot be re-read).
        defer = header_only and data is None
        check_structure(fp, size, location, limits)
        ds, forced = _dcmread(fp, location, header_only, defer)
        if forced and not _text(ds, "SOPInstanceUID"):
            raise NotDicomError(
                location, "no DICM preamble, and a forced read found no SOP Instance UID"
            )
        with _attributes_read(location, NotDicomError):
            _check_complete(ds, size, location)
            if header_only and _transfer_syntax(ds) != DeflatedExplicitVRLittleEndian:
                has_pixels = _check_pixel_extent(fp, size, ds, location)
            elif header_only:
                has_pixels = "Rows" in ds and "Columns" in ds  # inflated stream: cannot peek
            else:
                has_pixels = any(tag in ds for tag in _PIXEL_TAGS)
    notes = []
    if forced:
        notes.append("no DICOM file meta (PS3.10 7.1); read with force")
    elif not _transfer_syntax(ds):
        notes.append("file meta has no Transfer Syntax UID; encoding guessed from the data")
    return _Read(ds, tuple(notes), has_pixels)


def _dcmread(fp: BinaryIO, location: str, header_only: bool, defer: bool) -> tuple[Dataset, bool]:
    """Read strictly first; on a missing preamble read again with force."""
    defer_size = _HEADER_DEFER_BYTES if defer else None
    try:
        return dcmread(fp, defer_size, header_only, force=False), False
    except InvalidDicomError:
        pass
    except EOFError as exc:
        reason = f"file ends inside its header: {_one_line(exc)}"
        raise TruncatedFileError(location, reason) from exc
    except _READ_ERRORS as exc:
        raise NotDicomError(location, f"unparsable DICOM data set: {_one_line(exc)}") from exc
    fp.seek(0)
    try:
        return dcmread(fp, defer_size, header_only, force=True), True
    except _READ_ERRORS as exc:
        raise NotDicomError(
            location, "no DICM preamble, and not a parsable DICOM data set"
        ) from exc


def _check_complete(ds: Dataset, size: int, location: str) -> None:
    """Raise when a top-level element declares more bytes than the file holds.

    pydicom returns short values silently; this is where a cut file shows.
    """
    deflated = _transfer_syntax(ds) == DeflatedExplicitVRLittleEndian
    # Dataset.keys(), not iteration: iterating a Dataset converts every raw element.
    for tag in ds.keys():  # noqa: SIM118
        element = ds.get_item(tag, keep_deferred=True)
        if not isinstance(element, RawDataElement) or element.length == _UNDEFINED_LENGTH:
            continue
        if element.value is not None:
            have = len(element.value)
        elif deflated:
            continue  # deferred offsets point into the inflated stream
        else:
            have = max(0, size - element.value_tell)
        if have >= element.length:
            continue
        if tag in _PIXEL_TAGS:
            raise PixelDataError(
                location, f"pixel data truncated: {have} of {element.length} bytes"
            )
        raise TruncatedFileError(
            location, f"file ends inside element {tag}: {have} of {element.length} bytes"
        )


def _check_pixel_extent(fp: BinaryIO, size: int, ds: Dataset, location: str) -> bool:
    """After a header read, tell whether pixel data follow and fit in the file.

    pydicom leaves ``fp`` at the pixel data tag. Only element and item headers are
    read (PS3.5 7.1, A.4): a native value must fit in the file; encapsulated data must
    reach its sequence delimiter. Returns False when no pixel data follow.
    """
    tag = fp.read(4)
    if tag not in _PIXEL_TAG_BYTES:
        return False
    implicit, little = ds.original_encoding
    endian = "<" if little is not False else ">"
    # Explicit VR: VR (OB/OW/OF/OD) and two reserved bytes come before the length.
    header = fp.read(4) if implicit else fp.read(8)[4:]
    if len(header) < 4:
        raise PixelDataError(location, "file ends inside the pixel data element header")
    (length,) = struct.unpack(f"{endian}L", header)
    if length != _UNDEFINED_LENGTH:
        have = size - fp.tell()
        if have < length:
            raise PixelDataError(location, f"pixel data truncated: {have} of {length} bytes")
        return True
    while len(item := fp.read(8)) == 8:
        group, element, item_length = struct.unpack(f"{endian}HHL", item)
        if (group, element) == (0xFFFE, 0xE0DD):
            return True
        if (group, element) != (0xFFFE, 0xE000) or fp.tell() + item_length > size:
            break
        fp.seek(item_length, io.SEEK_CUR)
    raise PixelDataError(
        location,
        "encapsulated pixel data end before their sequence delimiter (file cut short)",
    )


def _pixel_transfer_syntax(ds: Dataset, location: str) -> UID:
    """The transfer syntax to decode with; guessed from the encoding when the meta lacks it."""
    syntax = _transfer_syntax(ds)
    if not syntax:
        if _is_encapsulated(ds):
            raise UnsupportedTransferSyntaxError(
                location,
                "no Transfer Syntax UID in the file meta and the pixel data are "
                "compressed, so the codec is unknown",
            )
        implicit, little = ds.original_encoding
        syntax = (
            ImplicitVRLittleEndian
            if implicit
            else ExplicitVRLittleEndian
            if little
            else ExplicitVRBigEndian
        )
        ds.file_meta.TransferSyntaxUID = syntax
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise UnsupportedTransferSyntaxError(
            location, f"no decoder for transfer syntax {syntax.name} ({syntax})"
        ) from exc
    if not decoder.is_available and syntax != JPEGExtended12Bit:
        missing = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
        raise UnsupportedTransferSyntaxError(
            location, f"no installed decoder for {syntax.name}; install {missing}"
        )
    if "Rows" not in ds or "Columns" not in ds:
        raise PixelDataError(location, "pixel data without Rows/Columns (0028,0010-0011)")
    return syntax


def _is_encapsulated(ds: Dataset) -> bool:
    """True when Pixel Data has undefined length, i.e. is compressed (PS3.5 A.4)."""
    element = ds.get_item(_PIXEL_TAGS[0])
    if isinstance(element, RawDataElement):
        return bool(element.length == _UNDEFINED_LENGTH)
    return bool(getattr(element, "is_undefined_length", False))


def _header(
    read: _Read, location: str, path: Path, member: str, limits: ReadLimits
) -> tuple[DicomHeader, list[str]]:
    ds, notes = read.ds, []
    sop_uid = _text(ds, "SOPInstanceUID")
    if not sop_uid:
        raise NotDicomError(location, "no SOP Instance UID (0008,0018); not a usable object")
    frames = number_of_frames(ds)
    has_pixels = read.has_pixels
    if has_pixels and frames is None:
        raise PixelDataError(
            location,
            f"invalid Number of Frames (0028,0008) {ds.get('NumberOfFrames')!r}; "
            "pixel data cannot be decoded",
        )
    if has_pixels:
        check_pixel_bytes(decoded_pixel_bytes(ds, frames or 1), location, limits.max_pixel_bytes)
    positions = _all_frame_positions(ds, frames or 1) if has_pixels else ()
    instance = Instance(
        sop_instance_uid=sop_uid,
        sop_class_uid=_text(ds, "SOPClassUID"),
        path=path,
        transfer_syntax_uid=str(_transfer_syntax(ds)),
        rows=(_int(ds.get("Rows")) or 0) if has_pixels else 0,
        columns=(_int(ds.get("Columns")) or 0) if has_pixels else 0,
        frames=(frames or 0) if has_pixels else 0,
        samples_per_pixel=_int(ds.get("SamplesPerPixel")) or 1,
        photometric=_text(ds, "PhotometricInterpretation"),
        instance_number=_int(ds.get("InstanceNumber")),
        position_lps_mm=positions[0] if positions else None,
        orientation_lps=image_orientation(ds) if has_pixels else None,
        member=member,
        has_pixels=has_pixels,
    )
    series_uid = _text(ds, "SeriesInstanceUID")
    study_uid = _text(ds, "StudyInstanceUID")
    if not series_uid or not study_uid:
        notes.append("no Series or Study Instance UID; derived from the SOP Instance UID")
    series = Series(
        series_instance_uid=series_uid or uid_from(f"series:{sop_uid}"),
        modality=_text(ds, "Modality").upper(),
        instances=(instance,),
        body_part=_text(ds, "BodyPartExamined").upper(),
        view_position=_text(ds, "ViewPosition").upper(),
        description=_text(ds, "SeriesDescription"),
        series_number=_int(ds.get("SeriesNumber")),
        manufacturer=_text(ds, "Manufacturer"),
        manufacturer_model=_text(ds, "ManufacturerModelName"),
        station_name=_text(ds, "StationName"),
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
    )
    study = Study(
        study_instance_uid=study_uid or uid_from(f"study:{sop_uid}"),
        series=(series,),
        patient=_patient(ds),
        study_date=_text(ds, "StudyDate"),
        description=_text(ds, "StudyDescription"),
        accession_number=_text(ds, "AccessionNumber"),
        referring_physician=_text(ds, "ReferringPhysicianName"),
        study_time=_text(ds, "StudyTime"),
        requested_procedure=_requested(ds, "RequestedProcedureDescription"),
        reason_for_study=_requested(ds, "ReasonForTheRequestedProcedure")
        or _text(ds, "ReasonForStudy"),
        admitting_diagnoses=_text(ds, "AdmittingDiagnosesDescription"),
        patient_history=_text(ds, "AdditionalPatientHistory"),
    )
    return DicomHeader(instance, series, study), notes


def _requested(ds: Dataset, keyword: str) -> str:
    """An attribute of the order: at the top level, else in the first Request Attributes
    Sequence (0040,0275) item that has it (PS3.3 C.4.10: images made from a worklist)."""
    found = _text(ds, keyword)
    if found:
        return found
    try:
        items = ds.get("RequestAttributesSequence") or []
        return next((t for item in items if (t := _text(item, keyword))), "")
    except _READ_ERRORS:
        return ""


def _patient(ds: Dataset) -> Patient:
    seen = next(
        (
            _text(ds, k)
            for k in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
            if _text(ds, k)
        ),
        "",
    )
    birth_date = _text(ds, "PatientBirthDate")
    return Patient(
        patient_id=_text(ds, "PatientID"),
        name=_text(ds, "PatientName"),
        birth_date=birth_date,
        sex=_text(ds, "PatientSex").upper(),
        age_years=patient_age_years(_text(ds, "PatientAge"), birth_date, seen),
    )


def _all_frame_positions(ds: Dataset, frames: int) -> tuple[tuple[float, float, float], ...]:
    positions = [frame_position(ds, f) for f in range(frames)]
    if any(p is None for p in positions):
        return ()
    return tuple(p for p in positions if p is not None)


def _transfer_syntax(ds: Dataset) -> UID:
    """The file meta's Transfer Syntax UID; "" when absent or not a UID string."""
    meta = getattr(ds, "file_meta", None)
    try:
        value = meta.get("TransferSyntaxUID") if meta is not None else None
    except _READ_ERRORS:
        return UID("")
    return UID(value.strip() if isinstance(value, str) else "")


def _text(ds: Dataset, keyword: str) -> str:
    """A data element's value as one stripped string ("" when absent or unreadable)."""
    try:
        value = ds.get(keyword)
    except _READ_ERRORS:
        return ""
    if value is None or isinstance(value, Sequence | Dataset):
        return ""  # not text; and str() of a malformed sequence can be huge (limits.py)
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip()


def _int(value: object) -> int | None:
    try:
        return int(str(value).strip()) if value is not None and str(value).strip() else None
    except ValueError:
        return None


def _parse_date(text: str) -> date | None:
    digits = text.replace(".", "").replace("-", "").strip()
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def _sop_name(sop_class_uid: str) -> str:
    return UID(sop_class_uid).name if sop_class_uid else "DICOM"


def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(_RAW_VALUE.sub("Instead received a value with length", str(text)).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
