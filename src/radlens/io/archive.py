"""Zip archives: members read into memory one at a time, never extracted to disk.

Two defences, because a zip can come from anywhere:

* **Unsafe member names** (absolute paths, drive letters, ``..`` components) are refused.
  Nothing is written to disk here, but member names travel on in
  :attr:`~radlens.domain.imaging.Instance.member` and may later name output files.
* **Zip bombs**: the declared uncompressed size of the whole archive, and the bytes
  actually inflated while reading, are both held under ``max_unzipped_bytes``.

Hidden members (any path part starting with ``.``, which covers macOS ``__MACOSX/._*``
resource forks), ``__MACOSX/`` folders, directories and ``DICOMDIR`` index files are
skipped silently.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from radlens.errors import InputError, UnreadableArchiveError

DEFAULT_MAX_UNZIPPED_BYTES = 4 * 1024**3
"""Default cap on the bytes inflated from one archive (4 GiB)."""

_CHUNK_BYTES = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
# What zipfile and zlib raise for a corrupt, encrypted or exotic archive or member.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError, OSError)


@dataclass(frozen=True)
class ArchiveMember:
    """One member of a zip, read into memory.

    Attributes:
        name: the member name inside the archive.
        data: its uncompressed bytes.
    """

    name: str
    data: bytes = field(repr=False)


def is_zip(path: Path) -> bool:
    """Return True when ``path`` starts with a zip signature, or is named ``*.zip``.

    A file named ``.zip`` that is not one is treated as an archive so that it is reported
    as an unreadable archive rather than as an unknown format.
    """
    if path.suffix.lower() == ".zip":
        return True
    try:
        with path.open("rb") as fp:
            return fp.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    except OSError:
        return False


def is_safe_member_name(name: str) -> bool:
    """Return False for member names that could escape a destination folder.

    Example:
        >>> is_safe_member_name("study/IMG0001.dcm"), is_safe_member_name("../evil.dcm")
        (True, False)
    """
    if not name or "\x00" in name:
        return False
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or _DRIVE.match(normalized):
        return False
    return ".." not in normalized.split("/")


def is_skipped_member_name(name: str) -> bool:
    """Return True for members that are not data: folders, hidden files, DICOMDIR."""
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if not parts or name.endswith(("/", "\\")):
        return True
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return True
    return parts[-1].upper() == "DICOMDIR"


def iter_members(
    path: Path, *, max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES
) -> Iterator[ArchiveMember | InputError]:
    """Yield each data member of a zip in name order, or the error that refused it.

    A refused member (unsafe name, corrupt or encrypted data) is yielded as an
    :class:`~radlens.errors.InputError` whose path is ``archive.zip!member``, so a caller
    can list it and carry on.

    Args:
        path: the zip file.
        max_unzipped_bytes: cap on the declared and the actually inflated size of the
            whole archive.

    Raises:
        UnreadableArchiveError: the archive cannot be opened, or it is larger than the
            cap once inflated (a zip bomb is refused as a whole).

    Example:
        >>> for item in iter_members(Path("study.zip")):  # doctest: +SKIP
        ...     print(item.name if isinstance(item, ArchiveMember) else item)
    """
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS as exc:
        raise UnreadableArchiveError(path, f"cannot open zip archive: {exc}") from exc
    with archive:
        infos = sorted(archive.infolist(), key=lambda i: i.filename)
        declared = sum(i.file_size for i in infos)
        if declared > max_unzipped_bytes:
            raise UnreadableArchiveError(
                path,
                f"declares {declared} bytes uncompressed, over the cap of "
                f"{max_unzipped_bytes}; refusing a possible zip bomb",
            )
        budget = max_unzipped_bytes
        for info in infos:
            location = f"{path}!{info.filename}"
            if not is_safe_member_name(info.filename):  # before the hidden-name check: '..'
                yield UnreadableArchiveError(
                    location, "unsafe member name (absolute path or '..'); skipped"
                )
                continue
            if is_skipped_member_name(info.filename):
                continue
            try:
                data = _read_capped(archive, info, budget)
            except _ZIP_ERRORS as exc:
                yield UnreadableArchiveError(location, f"cannot read zip member: {exc}")
                continue
            if data is None:
                raise UnreadableArchiveError(
                    path,
                    f"inflates past the cap of {max_unzipped_bytes} bytes; "
                    "refusing a possible zip bomb",
                )
            budget -= len(data)
            yield ArchiveMember(info.filename, data)


def read_member(
    path: Path, member: str, *, max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES
) -> bytes:
    """Return the bytes of one member of a zip.

    Raises:
        UnreadableArchiveError: the archive or the member cannot be read, the member
            name is unsafe or missing, or it inflates past the cap.
    """
    location = f"{path}!{member}"
    if not is_safe_member_name(member):
        raise UnreadableArchiveError(location, "unsafe member name (absolute path or '..')")
    try:
        with zipfile.ZipFile(path) as archive:
            data = _read_capped(archive, archive.getinfo(member), max_unzipped_bytes)
    except KeyError as exc:
        raise UnreadableArchiveError(location, "no such member in the archive") from exc
    except _ZIP_ERRORS as exc:
        raise UnreadableArchiveError(location, f"cannot read zip member: {exc}") from exc
    if data is None:
        raise UnreadableArchiveError(
            location, f"inflates past the cap of {max_unzipped_bytes} bytes"
        )
    return data


def _read_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes | None:
    """Read a member in chunks; None when it inflates past ``budget`` bytes."""
    chunks: list[bytes] = []
    total = 0
    with archive.open(info) as fp:
        while chunk := fp.read(_CHUNK_BYTES):
            total += len(chunk)
            if total > budget:
                return None
            chunks.append(chunk)
    return b"".join(chunks)
