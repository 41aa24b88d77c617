"""Limits on what one received DICOM object may cost, checked before pydicom parses it.

An object from the network is untrusted. Four checks keep a hostile or corrupted one
from exhausting the process:

* **Sequence nesting** (:func:`check_structure`): pydicom parses a sequence of undefined
  length recursively while reading, and walks defined-length ones recursively when a
  data set is converted (DICOM JSON, copies), so a deeply nested sequence ends in a
  ``RecursionError``. The element structure is walked here first *without recursion*
  (PS3.5 7.1, 7.5), and an object nested deeper than ``max_sequence_depth`` is refused.
* **Elements encoded as sequences that are none** (a Study Description sent with VR SQ):
  pydicom reads them as sequences, and ``str()`` of a malformed sequence (which pydicom
  itself does while checking the file meta) nests each item's error message and
  traceback into the next, doubling per level: refused.
* **Deflated data sets** (PS3.5 A.5): pydicom inflates the whole data set into memory;
  a deflate bomb is refused once it inflates past ``max_inflated_bytes``.
* **Decoded pixel size** (:func:`check_pixel_size`): rows x columns x frames x samples x
  bytes per sample is held under ``max_pixel_bytes`` *before* any decoder allocates its
  output, and absurd Image Pixel attributes (zero rows, 9 samples) are refused.

The walk is a guard, not a parser: where it cannot follow the structure (a length past
the end, an unknown encoding) it stops and leaves the verdict to pydicom, whose errors
:mod:`radlens.io.dicom` maps to typed ones (a ``RecursionError`` included, as a last line).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from radlens.errors import NotDicomError, PixelDataError

DEFAULT_MAX_PIXEL_BYTES = 1024**3
"""Default cap on the decoded pixel data of one object (1 GiB: a 2,000-slice 512 x 512
16-bit enhanced CT)."""
DEFAULT_MAX_SEQUENCE_DEPTH = 64
"""Default cap on sequence nesting (real objects rarely exceed 6: SR content trees)."""
DEFAULT_MAX_INFLATED_BYTES = 256 * 1024**2
"""Default cap on an inflated (Deflated Explicit VR Little Endian) data set."""

_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_PIXEL_GROUP = 0x7FE0
# Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 table 7.1-1).
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_BITS_ALLOCATED = frozenset({1, 8, 16, 32, 64})
_MAX_SAMPLES = 4  # ARGB and CMYK (retired) have four; PS3.3 C.7.6.3.1.1


@dataclass(frozen=True)
class ReadLimits:
    """What one DICOM object may cost to read and decode.

    Attributes:
        max_pixel_bytes: cap on rows x columns x frames x samples x bytes per sample.
        max_sequence_depth: cap on how deeply sequences nest.
        max_inflated_bytes: cap on a deflated data set once inflated.
    """

    max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES
    max_sequence_depth: int = DEFAULT_MAX_SEQUENCE_DEPTH
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES


DEFAULT_LIMITS = ReadLimits()


def decoded_pixel_bytes(ds: Dataset, frames: int) -> int | None:
    """Rows x columns x frames x samples x bytes per sample, or None when not computable.

    Example:
        >>> ds = Dataset()
        >>> ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = 512, 512, 1, 16
        >>> decoded_pixel_bytes(ds, frames=10)
        5242880
    """
    rows, columns = _count(ds, "Rows"), _count(ds, "Columns")
    samples, bits = _count(ds, "SamplesPerPixel", 1), _count(ds, "BitsAllocated", 16)
    if rows is None or columns is None or samples is None or bits is None:
        return None
    return max(0, rows) * max(0, columns) * frames * max(1, samples) * max(1, bits // 8)


def check_pixel_size(ds: Dataset, location: str, max_pixel_bytes: int, frames: int) -> int:
    """Return the decoded size of the pixel data in bytes; refuse it before decoding.

    Raises:
        PixelDataError: rows, columns, samples or bits allocated are not usable values,
            or the decoded pixel data would be larger than ``max_pixel_bytes``.
    """
    rows, columns = _count(ds, "Rows"), _count(ds, "Columns")
    samples = _count(ds, "SamplesPerPixel", 1)
    bits = _count(ds, "BitsAllocated", 16)
    if not rows or not columns or rows < 0 or columns < 0:
        raise PixelDataError(location, f"unusable image size {rows} x {columns} (0028,0010-0011)")
    if samples is None or not 1 <= samples <= _MAX_SAMPLES:
        raise PixelDataError(location, f"unusable Samples per Pixel (0028,0002) {samples}")
    if bits not in _BITS_ALLOCATED:
        raise PixelDataError(location, f"unusable Bits Allocated (0028,0100) {bits}")
    size = decoded_pixel_bytes(ds, frames) or 0
    check_pixel_bytes(size, location, max_pixel_bytes)
    return size


def check_pixel_bytes(size: int | None, location: str, max_pixel_bytes: int) -> None:
    """Refuse a decoded size over the cap (None: not known yet, nothing to refuse).

    Raises:
        PixelDataError: ``size`` is over ``max_pixel_bytes``.
    """
    if size is not None and size > max_pixel_bytes:
        raise PixelDataError(
            location,
            f"pixel data would decode to {size} bytes, over the cap of {max_pixel_bytes}; "
            "refused before decoding",
        )


def check_structure(fp: BinaryIO, size: int, location: str, limits: ReadLimits) -> None:
    """Walk the element structure of a PS3.10 file (or a bare data set) without recursion.

    ``fp`` is left where it was. Nothing is parsed beyond element headers.

    Raises:
        NotDicomError: sequences nest deeper than ``limits.max_sequence_depth``.
        NotDicomError: a deflated data set inflates past ``limits.max_inflated_bytes``,
            or does not inflate at all.
    """
    start = fp.tell()
    try:
        head = fp.read(132)
        offset = 132 if head[128:132] == b"DICM" else 0
        fp.seek(start + offset)
        syntax, offset = _skip_file_meta(fp, start + offset, start + size)
        if syntax == DeflatedExplicitVRLittleEndian:
            fp.seek(offset)
            inflated = _inflate(fp.read(), location, limits.max_inflated_bytes)
            _walk(_Bytes(inflated), 0, len(inflated), False, True, location, limits)
            return
        implicit, little = _encoding(syntax, fp, offset)
        _walk(_File(fp), offset, start + size, implicit, little, location, limits)
    finally:
        fp.seek(start)


class _File:
    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp

    def read(self, pos: int, n: int) -> bytes:
        self.fp.seek(pos)
        return self.fp.read(n)


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, pos: int, n: int) -> bytes:
        return self.data[pos : pos + n]


def _skip_file_meta(fp: BinaryIO, pos: int, end: int) -> tuple[str, int]:
    """Skip the group 0002 elements (explicit VR little endian, PS3.10 7.1); return the
    Transfer Syntax UID ("" when absent) and where the data set starts."""
    syntax = ""
    while pos + 8 <= end:
        fp.seek(pos)
        header = fp.read(12)
        group, element = struct.unpack("<HH", header[:4])
        if group != 0x0002 or len(header) < 8:
            break
        if header[4:6] in _LONG_VRS:
            if len(header) < 12:
                break
            (length,) = struct.unpack("<L", header[8:12])
            value_at = pos + 12
        else:
            (length,) = struct.unpack("<H", header[6:8])
            value_at = pos + 8
        if length == _UNDEFINED or value_at + length > end:
            break
        if element == 0x0010:
            fp.seek(value_at)
            syntax = fp.read(length).decode("ascii", "replace").strip("\x00 ")
        pos = value_at + length
    return syntax, pos


def _encoding(syntax: str, fp: BinaryIO, offset: int) -> tuple[bool, bool]:
    """(implicit VR, little endian) of the data set, as pydicom will read it: by the
    transfer syntax, but a data set whose first element shows no VR is implicit."""
    fp.seek(offset)
    vr = fp.read(6)[4:6]
    shows_vr = len(vr) == 2 and 0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B
    return not shows_vr, syntax != ExplicitVRBigEndian


def _inflate(data: bytes, location: str, cap: int) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, cap + 1)
    except zlib.error as exc:
        raise NotDicomError(location, f"deflated data set does not inflate: {exc}") from exc
    if len(out) > cap:
        raise NotDicomError(
            location,
            f"deflated data set inflates past the cap of {cap} bytes; refusing a deflate bomb",
        )
    return out


def _walk(
    src: _File | _Bytes,
    pos: int,
    end: int,
    implicit: bool,
    little: bool,
    location: str,
    limits: ReadLimits,
) -> None:
    """Follow element and item headers with an explicit stack; refuse deep nesting.

    Every step moves ``pos`` forward by at least 8 bytes, so the walk ends.
    """
    endian = "<" if little else ">"
    nesting = _Nesting()
    while pos + 8 <= end:
        nesting.close_passed(pos)
        header = src.read(pos, 12)
        if len(header) < 8:
            return
        group, element = struct.unpack(f"{endian}HH", header[:4])
        tag = group << 16 | element
        if tag in (_ITEM, _ITEM_END, _SEQUENCE_END):
            (length,) = struct.unpack(f"{endian}L", header[4:8])
            pos += 8
            if not nesting.delimit(tag, length, pos):
                return  # an item outside a sequence: pydicom's to judge
            continue
        vr, length, value_at = _element_header(header, endian, implicit)
        value_at += pos
        if _misencoded_sequence(tag, vr, length):
            raise NotDicomError(
                location,
                f"element ({group:04X},{element:04X}) is encoded as a sequence, which the "
                "data dictionary (PS3.6) says it is not",
            )
        if group == _PIXEL_GROUP and length == _UNDEFINED:
            pos = _skip_fragments(src, value_at, end, endian)
        elif _is_sequence(src, tag, vr, length, value_at, endian):
            nesting.open_sequence(None if length == _UNDEFINED else value_at + length)
            if nesting.depth > limits.max_sequence_depth:
                raise NotDicomError(
                    location,
                    f"sequences nested more than {limits.max_sequence_depth} deep; refused",
                )
            pos = value_at
        elif length == _UNDEFINED:
            return  # an undefined-length value that is no sequence: pydicom's to judge
        else:
            pos = value_at + length


class _Nesting:
    """Open sequences and items: ``(is_sequence, end offset)``, end None for undefined
    length (closed by a delimitation item, PS3.5 7.5.2)."""

    def __init__(self) -> None:
        self.stack: list[tuple[bool, int | None]] = []
        self.depth = 0

    def open_sequence(self, end: int | None) -> None:
        self.stack.append((True, end))
        self.depth += 1

    def close_passed(self, pos: int) -> None:
        while self.stack and (end := self.stack[-1][1]) is not None and pos >= end:
            self._pop()

    def delimit(self, tag: int, length: int, pos: int) -> bool:
        """Apply an item or delimiter at ``pos`` (after its header); False when out of place."""
        top = self.stack[-1] if self.stack else None
        if tag == _ITEM:
            if top is None or not top[0]:
                return False
            self.stack.append((False, None if length == _UNDEFINED else pos + length))
        elif tag == _ITEM_END and top is not None and not top[0]:
            self._pop()
        elif tag == _SEQUENCE_END:
            if top is not None and not top[0] and top[1] is None:
                self._pop()  # an item left open by its sequence's end
            if self.stack and self.stack[-1][0]:
                self._pop()
        return True

    def _pop(self) -> None:
        is_sequence, _ = self.stack.pop()
        self.depth -= is_sequence


def _element_header(header: bytes, endian: str, implicit: bool) -> tuple[bytes, int, int]:
    """(VR, or b"" when implicit; value length; offset of the value from the element).

    Like pydicom, an element of an explicit VR data set whose VR bytes are not two
    upper-case letters is read as implicit VR (items may be encoded so, PS3.5 6.2.2).
    """
    vr = header[4:6]
    if implicit or not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B):
        (length,) = struct.unpack(f"{endian}L", header[4:8])
        return b"", length, 8
    if vr in _LONG_VRS:
        (length,) = struct.unpack(f"{endian}L", header[8:12].ljust(4, b"\0"))
        return vr, length, 12
    (length,) = struct.unpack(f"{endian}H", header[6:8])
    return vr, length, 8


def _misencoded_sequence(tag: int, vr: bytes, length: int) -> bool:
    """A public element that the data dictionary does not call a sequence, encoded as one.

    pydicom reads it as a sequence, and printing it (``str()``, which pydicom's own file
    meta check does) nests each item's conversion error, traceback included, into the
    next message: the text doubles per level, gigabytes from a few kilobytes (found by
    fuzzing).
    """
    if (tag >> 16) % 2 or not (vr == b"SQ" or (vr == b"UN" and length == _UNDEFINED)):
        return False
    try:
        known = dictionary_VR(tag)
    except KeyError:
        return False
    return "SQ" not in known and known != "UN"


def _is_sequence(
    src: _File | _Bytes, tag: int, vr: bytes, length: int, value_at: int, endian: str
) -> bool:
    if vr == b"SQ" or (vr == b"UN" and length == _UNDEFINED):
        return True
    if vr:
        return False
    if length == _UNDEFINED:
        return True
    try:
        known = dictionary_VR(tag)
    except KeyError:
        known = ""
    if known == "SQ":
        return True
    # An unknown (private) element whose value starts with an item is read as a sequence.
    return not known and src.read(value_at, 4) == struct.pack(f"{endian}HH", 0xFFFE, 0xE000)


def _skip_fragments(src: _File | _Bytes, pos: int, end: int, endian: str) -> int:
    """Skip encapsulated pixel data (PS3.5 A.4): items until the sequence delimiter."""
    while pos + 8 <= end:
        group, element, length = struct.unpack(f"{endian}HHL", src.read(pos, 8))
        pos += 8
        if (group, element) != (0xFFFE, 0xE000) or length == _UNDEFINED:
            return end if (group, element) != (0xFFFE, 0xE0DD) else pos
        pos += length
    return end


def _count(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    try:
        value = ds.get(keyword, default)
        return None if value is None else int(str(value).strip() or -1)
    except (TypeError, ValueError, OverflowError):
        return None
