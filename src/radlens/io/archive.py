"""Zip archives: members read into memory one at a time, never extracted to disk.

Two defences, because a zip can come from anywhere:

* **Unsafe members**: names with absolute paths, drive letters or ``..`` components, and
  symbolic links (a Unix mode of ``S_IFLNK`` in the external attributes), are refused.
  Nothing is written to disk here, but member names travel on in
  :attr:`~radlens.domain.imaging.Instance.member` and may later name output files.
* **Zip bombs**: the declared uncompressed size of the whole archive, and the bytes
  actually inflated while reading, are both held under ``max_unzipped_bytes``; an archive
  of more than ``max_members`` entries is refused before any is read; a member that
  inflates more than ``max_ratio`` times its compressed size (past a first
  :data:`RATIO_FREE_BYTES`, so small blank images pass) is refused as it inflates.

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

DEFAULT_MAX_MEMBERS = 100_000
"""Default cap on the entries of one archive (a large CT study has a few thousand)."""
DEFAULT_MAX_RATIO = 200
"""Default cap on inflated / compressed size of one member (DICOM deflates 2-20 times)."""
RATIO_FREE_BYTES = 64 * 1024**2
"""A member may inflate this much whatever its ratio (a blank slice deflates ~1000 times)."""

_CHUNK_BYTES = 1024 * 1024
_S_IFMT, _S_IFLNK = 0o170000, 0o120000
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


def is_symlink_member(info: zipfile.ZipInfo) -> bool:
    """Return True for a member stored as a symbolic link (Unix mode in the high bits)."""
    return (info.external_attr >> 16) & _S_IFMT == _S_IFLNK


def iter_members(
    path: Path,
    *,
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_ratio: int = DEFAULT_MAX_RATIO,
) -> Iterator[ArchiveMember | InputError]:
    """Yield each data member of a zip in name order, or the error that refused it.

    A refused member (unsafe name, corrupt or encrypted data) is yielded as an
    :class:`~radlens.errors.InputError` whose path is ``archive.zip!member``, so a caller
    can list it and carry on.

    Args:
        path: the zip file.
        max_unzipped_bytes: cap on the declared and the actually inflated size of the
            whole archive.
        max_members: cap on the number of entries.
        max_ratio: cap on how many times its compressed size one member may inflate.

    Raises:
        UnreadableArchiveError: the archive cannot be opened, has more than
            ``max_members`` entries, or is larger than the cap once inflated (a zip bomb
            is refused as a whole).

    Example:
        >>> for item in iter_members(Path("study.zip")):  # doctest: +SKIP
        ...     print(item.name if isinstance(item, ArchiveMember) else item)
    """
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS as exc:
        raise UnreadableArchiveError(path, f"cannot open zip archive: {exc}") from exc
    with archive:
        if len(archive.infolist()) > max_members:
            raise UnreadableArchiveError(
                path,
                f"{len(archive.infolist())} entries, over the cap of {max_members}; "
                "refusing a possible zip bomb",
            )
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
            if is_symlink_member(info):
                yield UnreadableArchiveError(location, "symbolic link member; skipped")
                continue
            if is_skipped_member_name(info.filename):
                continue
            try:
                data = _read_capped(archive, info, budget, max_ratio)
            except _ZIP_ERRORS as exc:
                yield UnreadableArchiveError(location, f"cannot read zip member: {exc}")
                continue
            except _RatioExceeded:
                yield UnreadableArchiveError(
                    location,
                    f"inflates more than {max_ratio} times its compressed size; "
                    "skipped as a possible zip bomb",
                )
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
    path: Path,
    member: str,
    *,
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
    max_ratio: int = DEFAULT_MAX_RATIO,
) -> bytes:
    """Return the bytes of one member of a zip.

    Raises:
        UnreadableArchiveError: the archive or the member cannot be read, the member
            name is unsafe or missing, it is a symbolic link, or it inflates past a cap.
    """
    location = f"{path}!{member}"
    if not is_safe_member_name(member):
        raise UnreadableArchiveError(location, "unsafe member name (absolute path or '..')")
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(member)
            if is_symlink_member(info):
                raise UnreadableArchiveError(location, "symbolic link member")
            data = _read_capped(archive, info, max_unzipped_bytes, max_ratio)
    except _RatioExceeded as exc:
        raise UnreadableArchiveError(
            location, f"inflates more than {max_ratio} times its compressed size"
        ) from exc
    except KeyError as exc:
        raise UnreadableArchiveError(location, "no such member in the archive") from exc
    except _ZIP_ERRORS as exc:
        raise UnreadableArchiveError(location, f"cannot read zip member: {exc}") from exc
    if data is None:
        raise UnreadableArchiveError(
            location, f"inflates past the cap of {max_unzipped_bytes} bytes"
        )
    return data


class _RatioExceeded(Exception):
    """A member inflating more than the ratio cap allows."""


def _read_capped(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int, max_ratio: int
) -> bytes | None:
    """Read a member in chunks; None when it inflates past ``budget`` bytes.

    Raises:
        _RatioExceeded: it inflates past ``max_ratio`` times its compressed size (and
            past :data:`RATIO_FREE_BYTES`).
    """
    chunks: list[bytes] = []
    total = 0
    ratio_cap = max(RATIO_FREE_BYTES, max_ratio * info.compress_size)
    with archive.open(info) as fp:
        while chunk := fp.read(_CHUNK_BYTES):
            total += len(chunk)
            if total > budget:
                return None
            if total > ratio_cap:
                raise _RatioExceeded(info.filename)
            chunks.append(chunk)
    return b"".join(chunks)
