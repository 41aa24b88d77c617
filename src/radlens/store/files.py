"""Instance files on disk: written durably, named by hash, never by dataset values.

:func:`write_durably` writes to a temporary file in the destination folder, flushes,
``fsync``\\ s it, renames it over the destination (atomic on POSIX) and ``fsync``\\ s the
folder, so once it returns the file and its name survive a crash. A crash before the
rename leaves only a ``*.tmp`` file, which :func:`remove_partial_files` clears at start.

The file name is the sha256 of the SOP Instance UID (:func:`instance_path`): a dataset
can carry any string, and none of it reaches the file system.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from radlens.errors import InputError

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


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that it is complete and on stable storage on return."""
    folder = path.parent
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=".", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fp:
            fp.write(data)
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
