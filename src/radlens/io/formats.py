"""Which reader a file needs, told from its first bytes (and, for NIfTI, its name).

DICOM is recognized by content: the ``DICM`` marker after the 128-byte preamble
(PS3.10 7.1). Files without it may still be DICOM written without file meta; only a
forced read can tell, so :func:`sniff_format` answers ``UNKNOWN`` and the caller tries.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from radlens.domain.imaging import Instance
from radlens.io.archive import read_member

HEAD_BYTES = 352
"""How many leading bytes :func:`sniff_format` looks at."""

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_NIFTI1_MAGICS = (b"n+1\x00", b"ni1\x00")
_NIFTI2_MAGICS = (b"n+2\x00", b"ni2\x00")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")


class SourceFormat(StrEnum):
    """File formats radlens reads."""

    DICOM = "dicom"
    NIFTI = "nifti"
    RASTER = "raster"
    UNKNOWN = "unknown"


def sniff_format(name: str, head: bytes) -> SourceFormat:
    """Tell the format of a file from its name and first :data:`HEAD_BYTES` bytes.

    Example:
        >>> sniff_format("x.bin", b"\\x89PNG\\r\\n\\x1a\\n")
        <SourceFormat.RASTER: 'raster'>
    """
    if head[128:132] == b"DICM":
        return SourceFormat.DICOM
    if head.startswith((_PNG_MAGIC, _JPEG_MAGIC)):
        return SourceFormat.RASTER
    if head[344:348] in _NIFTI1_MAGICS or head[4:8] in _NIFTI2_MAGICS:
        return SourceFormat.NIFTI
    if name.lower().endswith(_NIFTI_SUFFIXES):
        return SourceFormat.NIFTI  # gzip-compressed NIfTI shows no magic in its head
    return SourceFormat.UNKNOWN


def read_head(path: Path) -> bytes:
    """Return the first :data:`HEAD_BYTES` bytes of a file."""
    with path.open("rb") as fp:
        return fp.read(HEAD_BYTES)


def instance_bytes(instance: Instance) -> bytes | None:
    """Return the bytes of a zip member instance, or None for a plain file."""
    return read_member(instance.path, instance.member) if instance.member else None


def instance_format(instance: Instance, data: bytes | None = None) -> SourceFormat:
    """Tell the format of the file an instance came from (``data``: its bytes, if read)."""
    name = instance.member or instance.path.name
    if data is None and instance.member:
        data = instance_bytes(instance)
    head = data[:HEAD_BYTES] if data is not None else read_head(instance.path)
    return sniff_format(name, head)
