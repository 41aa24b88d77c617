"""radlens.io.formats: the format of a file comes from its content first."""

from __future__ import annotations

import pytest

from radlens.io.formats import SourceFormat, sniff_format

PREAMBLE_DICM = bytes(128) + b"DICM"
NIFTI1_HEAD = bytes(344) + b"n+1\x00"


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("x.png", PREAMBLE_DICM, SourceFormat.DICOM),  # content wins over the name
        ("x", b"\x89PNG\r\n\x1a\n" + bytes(10), SourceFormat.RASTER),
        ("x.dcm", b"\xff\xd8\xff\xe0" + bytes(10), SourceFormat.RASTER),
        ("x", NIFTI1_HEAD, SourceFormat.NIFTI),
        ("brain.nii.gz", b"\x1f\x8b" + bytes(10), SourceFormat.NIFTI),
        ("BRAIN.NII", bytes(10), SourceFormat.NIFTI),
        ("IMG0001", b"\x08\x00\x05\x00CS", SourceFormat.UNKNOWN),  # maybe DICOM without meta
    ],
)
def test_sniff_format_reads_magic_bytes_then_nifti_suffixes(
    name: str, head: bytes, expected: SourceFormat
) -> None:
    assert sniff_format(name, head) is expected
