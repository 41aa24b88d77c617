"""Instance files on disk: written durably, named by hash, never by dataset values.

:func:`write_durably` writes to a temporary file in the destination folder, flushes,
``fsync``\\ s it, renames it over the destination (atomic on POSIX) and ``fsync``\\ s the
folder, so once it returns the file and its name survive a crash. A crash before the
rename leaves only a ``*.tmp`` file, which :func:`remove_partial_files` clears at start.

The file name is the sha256 of the SOP Instance UID (:func:`instance_path`): a dataset
can carry any string, and none of it reaches the file system.

With a key ring (``Database.keys``), :func:`write_stored` seals what it writes
(``privacy.crypto``: segmented AES-256-GCM bound to the file's path under the storage
folder) and :func:`read_stored` opens it; a file written before encryption was turned on
(no ``RLENC01`` header) is read as it is until ``radlens keys rewrap`` seals it.
:func:`reading_stored` lets the reading code below the store (``io``, the pipeline) open
stored files by path.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from radlens.errors import InputError
from radlens.io.formats import reading_through
from radlens.privacy.crypto import (
    HEADER_BYTES,
    DecryptionError,
    KeyRing,
    is_sealed_file,
    open_stream,
    seal_stream,
)

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_MAX_UID_CHARS = 64
TEMP_SUFFIX = ".tmp"


def validate_uid(uid: str, what: str = "SOP Instance UID") -> str:
    """Return ``uid`` when it is a DICOM UID (PS3.5 9.1): digits and dots, at most 64.

    Raises:
        InputError: it is not.

    Example:
        >>> validate_uid("1.2.840.10008.1.1")
        '1.2.840.10008.1.1'
    """
    if not uid or len(uid) > _MAX_UID_CHARS or not _UID.match(uid):
        raise InputError(None, f"{what} is not a valid DICOM UID (PS3.5 9.1)")
    return uid


def instance_path(root: Path, sop_instance_uid: str) -> Path:
    """Where the instance with this (validated) UID is stored under ``root``.

    Example:
        >>> instance_path(Path("/s"), "1.2.3").relative_to("/s").parts[:2]
        ('c4', '7f')
    """
    digest = hashlib.sha256(validate_uid(sop_instance_uid).encode("ascii")).hexdigest()
    return root / digest[:2] / digest[2:4] / f"{digest}.dcm"


def write_durably(path: Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Write ``data`` (bytes, or a function that writes them to a file) to ``path`` so
    that it is complete and on stable storage on return."""
    folder = path.parent
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=".", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fp:
            if isinstance(data, bytes):
                fp.write(data)
            else:
                data(fp)
            fp.flush()
            os.fsync(fp.fileno())
        Path(temp_name).replace(path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(folder)
    if created:
        # The new folders' own entries must be durable too.
        for parent in (folder.parent, folder.parent.parent):
            _fsync_dir(parent)


def write_stored(root: Path, path: Path, data: bytes, keys: KeyRing | None) -> None:
    """Write a file of the storage folder ``root`` durably, sealed when there are ``keys``."""
    if keys is None:
        write_durably(path, data)
        return
    view = memoryview(data)
    step = 1024 * 1024
    chunks = (bytes(view[i : i + step]) for i in range(0, len(data), step))
    context = stored_context(root, path)
    write_durably(path, lambda fp: seal_stream(keys, chunks, fp, context))


def read_stored(root: Path, path: Path, keys: KeyRing | None) -> bytes:
    """The plaintext of a file of the storage folder ``root``.

    Raises:
        DecryptionError: sealed, and it does not open (altered, moved, cut short, no key).
        OSError: it cannot be read.
    """
    with path.open("rb") as fp:
        head = fp.read(HEADER_BYTES)
        if not is_sealed_file(head):
            return head + fp.read()  # written before encryption was turned on
        if keys is None:
            raise DecryptionError(path.name, "file is encrypted and no key is configured")
        fp.seek(0)
        try:
            return b"".join(open_stream(keys, fp, stored_context(root, path)))
        except DecryptionError as exc:
            raise DecryptionError(path.name, exc.reason) from None


def stored_context(root: Path, path: Path) -> str:
    """What a stored file's ciphertext is bound to: its place under the storage folder."""
    return "storage/" + path.relative_to(root).as_posix()


@contextmanager
def reading_stored(root: Path, keys: KeyRing | None) -> Iterator[None]:
    """Within the block, ``io`` reads the files under ``root`` through :func:`read_stored`.

    Example:
        >>> with reading_stored(storage, db.keys):  # doctest: +SKIP
        ...     found = scan(paths)
    """
    resolved = root.resolve()

    def reader(path: Path) -> bytes | None:
        try:
            path.resolve().relative_to(resolved)
        except ValueError:
            return None  # not one of ours
        return read_stored(resolved, path.resolve(), keys)

    with reading_through(reader):
        yield


def remove_partial_files(root: Path) -> int:
    """Delete temporary files a crashed write left under ``root``; return how many."""
    removed = 0
    if root.is_dir():
        for temp in root.rglob(f".*{TEMP_SUFFIX}"):
            temp.unlink(missing_ok=True)
            removed += 1
    return removed


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
