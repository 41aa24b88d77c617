"""radlens.io.limits: sequence nesting, deflate bombs and decoded pixel size, refused early."""

from __future__ import annotations

import inspect
import io
import struct
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian

from radlens.errors import NotDicomError, PixelDataError
from radlens.io.dicom import decode_instance, read_instance
from radlens.io.limits import (
    DEFAULT_MAX_SEQUENCE_DEPTH,
    ReadLimits,
    check_pixel_size,
    check_structure,
    decoded_pixel_bytes,
)
from serve_helpers import make_instance

_SQ_UNDEFINED = b"\x08\x00\x40\x11SQ\x00\x00\xff\xff\xff\xff"  # Referenced Image Sequence
_ITEM_UNDEFINED = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
_ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def nested(depth: int, *, undefined: bool = True) -> bytes:
    """CT_small with a Referenced Image Sequence nested ``depth`` deep (explicit VR LE)."""
    if undefined:
        body = (_SQ_UNDEFINED + _ITEM_UNDEFINED) * depth + (_ITEM_END + _SEQUENCE_END) * depth
    else:
        body = b""
        for _ in range(depth):
            item = b"\xfe\xff\x00\xe0" + struct.pack("<L", len(body)) + body
            body = b"\x08\x00\x40\x11SQ\x00\x00" + struct.pack("<L", len(item)) + item
    good = make_instance("1.2.3", "1.2.3.4")
    at = good.index(b"\x10\x00\x10\x00PN")  # Patient's Name: after every (0008,xxxx) element
    return good[:at] + body + good[at:]


def _header_of(data: bytes, limits: ReadLimits | None = None) -> None:
    read_instance(Path("nested.dcm"), data, limits=limits or ReadLimits())


@pytest.mark.parametrize("undefined", [True, False], ids=["undefined-length", "defined-length"])
def test_a_sequence_nested_ten_thousand_deep_is_refused_without_recursion(undefined: bool) -> None:
    data = nested(10_000, undefined=undefined)
    # pydicom alone recurses past Python's limit on the undefined-length form.
    if undefined:
        with pytest.raises(RecursionError):
            pydicom.dcmread(io.BytesIO(data))
    # Refused within a call stack far too shallow for 10,000 levels of recursion (a clock
    # bound would be a timed assertion; the stack bound says the same without one).
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + 300)  # frames only, no source read
    try:
        with pytest.raises(NotDicomError, match="nested more than 64 deep"):
            _header_of(data)
    finally:
        sys.setrecursionlimit(limit)


def test_nesting_up_to_the_limit_reads_and_past_it_is_refused() -> None:
    header = read_instance(Path("ok.dcm"), nested(DEFAULT_MAX_SEQUENCE_DEPTH))
    assert header.instance.sop_instance_uid == "1.2.3.4"
    with pytest.raises(NotDicomError, match="nested more than 64 deep"):
        _header_of(nested(DEFAULT_MAX_SEQUENCE_DEPTH + 1))
    with pytest.raises(NotDicomError, match="nested more than 8 deep"):
        _header_of(nested(9, undefined=False), ReadLimits(max_sequence_depth=8))


def test_structure_walk_leaves_the_file_position_alone() -> None:
    data = nested(3)
    fp = io.BytesIO(data)
    fp.seek(7)
    check_structure(fp, len(data), "x.dcm", ReadLimits())
    assert fp.tell() == 7


def test_every_pydicom_data_file_passes_the_structure_walk(pydicom_data_dir: Path) -> None:
    for path in sorted(pydicom_data_dir.glob("*.dcm")):
        with path.open("rb") as fp:
            check_structure(fp, path.stat().st_size, str(path), ReadLimits())


def _deflated(payload_bytes: int) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = ds.StudyInstanceUID = ds.SeriesInstanceUID = "1.2.3.5"
    ds.add_new(0x00091010, "OB", bytes(payload_bytes))  # private, zeros: deflates ~1000:1
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_a_deflate_bomb_is_refused_before_pydicom_inflates_it() -> None:
    data = _deflated(4 * 1024**2)
    assert len(data) < 64 * 1024
    read_instance(Path("small.dcm"), data)  # under the default cap
    with pytest.raises(NotDicomError, match="deflate bomb"):
        _header_of(data, ReadLimits(max_inflated_bytes=1024**2))


def test_a_deflated_data_set_that_does_not_inflate_is_refused() -> None:
    data = _deflated(1000)
    start = data.index(b"1.2.840.10008.1.2.1.99") + 22
    broken = data[:start] + b"\xff" * 32 + data[start + 32 :]
    with pytest.raises(NotDicomError):
        _header_of(broken)


def _image_header(rows: int, columns: int, frames: int = 1, samples: int = 1) -> Dataset:
    ds = Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = rows, columns, samples, 16
    ds.NumberOfFrames = frames
    return ds


def test_decoded_pixel_bytes_multiplies_every_dimension() -> None:
    assert decoded_pixel_bytes(_image_header(512, 512, 10), 10) == 512 * 512 * 10 * 2
    assert decoded_pixel_bytes(_image_header(4, 4, 1, 3), 1) == 4 * 4 * 3 * 2


@pytest.mark.parametrize(
    ("rows", "columns", "samples", "reason"),
    [
        (0, 512, 1, "image size"),
        (512, 0, 1, "image size"),
        (64, 64, 9, "Samples per Pixel"),
        (65535, 65535, 3, "over the cap"),
    ],
)
def test_absurd_image_pixel_attributes_are_refused(
    rows: int, columns: int, samples: int, reason: str
) -> None:
    with pytest.raises(PixelDataError, match=reason):
        check_pixel_size(_image_header(rows, columns, 1, samples), "x.dcm", 1024**3, 1)


def test_a_header_claiming_huge_frames_is_refused_at_read_not_at_decode() -> None:
    """Tiny real pixel data, a header that says 2^31 frames of 64 x 64: refused from the
    header, before any decoder could allocate 16 TiB."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.NumberOfFrames = 2**31 - 1
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(PixelDataError, match="refused before decoding"):
        read_instance(Path("huge.dcm"), buffer.getvalue())


def test_decode_checks_the_cap_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    instance = read_instance(Path("CT_small.dcm"), data).instance
    called = []
    monkeypatch.setattr(
        "radlens.io.pixels.get_decoder", lambda syntax: called.append(syntax) or None
    )
    with pytest.raises(PixelDataError, match="over the cap of 1000"):
        decode_instance(instance, data, limits=ReadLimits(max_pixel_bytes=1000))
    assert called == []


def test_reading_with_a_small_pixel_cap_refuses_a_real_ct_slice() -> None:
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    with pytest.raises(PixelDataError, match="32768 bytes, over the cap of 32767"):
        read_instance(Path("CT_small.dcm"), data, limits=ReadLimits(max_pixel_bytes=32767))


def test_a_public_element_encoded_as_a_sequence_is_refused() -> None:
    """Study Description (LO) sent as a sequence: pydicom would read it as one, and
    printing a malformed sequence can take gigabytes (a fuzzing finding)."""
    good = make_instance("1.2.3", "1.2.3.4")
    at = good.index(b"\x10\x00\x10\x00PN")
    misencoded = b"\x08\x00\x30\x10SQ\x00\x00\xff\xff\xff\xff" + _ITEM_UNDEFINED + _ITEM_END
    with pytest.raises(NotDicomError, match=r"\(0008,1030\) is encoded as a sequence"):
        _header_of(good[:at] + misencoded + _SEQUENCE_END + good[at:])
