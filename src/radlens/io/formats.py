"""Which reader a file needs, told from its first bytes (and, for NIfTI, its name).

DICOM is recognized by content: the ``DICM`` marker after the 128-byte preamble
(PS3.10 7.1). Files without it may still be DICOM written without file meta; only a
forced read can tell, so :func:`sniff_format` answers ``UNKNOWN`` and the caller tries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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

StoredReader = Callable[[Path], "bytes | None"]
"""The plaintext of a file a store keeps encrypted, or None for a file it does not own."""

# Set by the store around work on its files (``store.files.reading_stored``): io cannot
# know the keys, and the pipeline below it reads instances by path.
_STORED_READER: ContextVar[StoredReader | None] = ContextVar("radlens_stored_reader", default=None)


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


@contextmanager
def reading_through(reader: StoredReader) -> Iterator[None]:
    """Within the block (this thread or task), read files through ``reader`` first."""
    token = _STORED_READER.set(reader)
    try:
        yield
    finally:
        _STORED_READER.reset(token)


def stored_bytes(path: Path) -> bytes | None:
    """The plaintext of ``path`` from the active :func:`reading_through` reader, or None."""
    reader = _STORED_READER.get()
    return None if reader is None else reader(path)


def read_head(path: Path) -> bytes:
    """Return the first :data:`HEAD_BYTES` bytes of a file."""
    data = stored_bytes(path)
    if data is not None:
        return data[:HEAD_BYTES]
    with path.open("rb") as fp:
        return fp.read(HEAD_BYTES)


def instance_bytes(instance: Instance) -> bytes | None:
    """Return the bytes of a zip member instance or of a stored (encrypted) file, or None
    for a plain file."""
    if instance.member:
        return read_member(instance.path, instance.member)
    return stored_bytes(instance.path)


def instance_format(instance: Instance, data: bytes | None = None) -> SourceFormat:
    """Tell the format of the file an instance came from (``data``: its bytes, if read)."""
    name = instance.member or instance.path.name
    if data is None and instance.member:
        data = instance_bytes(instance)
    head = data[:HEAD_BYTES] if data is not None else read_head(instance.path)
    return sniff_format(name, head)
