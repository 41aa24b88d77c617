"""What a batch reads: a folder tree, a list file, or a DICOMweb endpoint.

:func:`list_source` turns the batch's SOURCE into one :class:`~radlens.cluster.jobs.StudyJob`
per study:

* a folder (or a file or zip): scanned here with :func:`radlens.io.scan.scan` (headers
  only); the workers read the files at the same paths;
* a list file (``*.txt``, ``*.lst``, ``*.list``): one file, folder or zip per line, blank
  lines and ``#`` comments skipped, relative paths taken from the list file's folder;
* ``http://`` or ``https://``: a DICOMweb service (QIDO-RS lists the studies, paged); each
  worker retrieves its study by WADO-RS, so no shared file system is needed.

:func:`shard` splits the jobs into ``parts`` by a stable hash of the study UID, so
``--part i --parts n`` runs can be started anywhere and rerun safely.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from radlens.cluster.jobs import DicomWebStudy, StudyJob
from radlens.domain.findings import RejectedInput
from radlens.errors import ConfigError, InputError
from radlens.io.scan import scan

LIST_SUFFIXES = (".txt", ".lst", ".list")
STUDY_INSTANCE_UID = "0020000D"  # DICOM JSON key (PS3.18 F.2)
_QIDO_PAGE = 1000

T = TypeVar("T")


@dataclass(frozen=True)
class Listing:
    """The studies of a source, and what could not be used."""

    jobs: tuple[StudyJob, ...]
    rejected: tuple[RejectedInput, ...] = ()
    warnings: tuple[str, ...] = ()


def is_dicomweb(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def list_source(
    source: str,
    username: str = "",
    password: str = "",
    modality: str = "",
    body_part: str = "",
) -> Listing:
    """The studies in ``source`` (a folder, a file, a list file, or a DICOMweb URL).

    Raises:
        InputError: a path that does not exist, or nothing readable in it.
        DicomWebError: the DICOMweb service cannot be searched.

    Example:
        >>> [j.study_uid for j in list_source("incoming/").jobs]  # doctest: +SKIP
        ['1.2.840.113619.2.55.3.1']
    """
    if is_dicomweb(source):
        return _list_dicomweb(source, username, password)
    path = Path(source).expanduser()
    paths = read_list_file(path) if path.suffix.lower() in LIST_SUFFIXES else [path]
    found = scan(paths, modality=modality, body_part=body_part)
    return Listing(
        tuple(StudyJob(s.study_instance_uid, study=s) for s in found.studies),
        tuple(RejectedInput(e.path or "", e.kind, e.reason) for e in found.rejected),
        found.warnings,
    )


def read_list_file(path: Path) -> list[Path]:
    """The paths listed in ``path``, one per line (``#`` comments and blank lines skipped).

    Raises:
        InputError: the list file cannot be read or lists nothing.
    """
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the list file: {type(exc).__name__}") from exc
    lines = [line.strip() for line in text.splitlines()]
    paths = [Path(line).expanduser() for line in lines if line and not line.startswith("#")]
    if not paths:
        raise InputError(path, "the list file names no file or folder")
    return [p if p.is_absolute() else path.parent / p for p in paths]


def _list_dicomweb(url: str, username: str, password: str) -> Listing:
    from radlens.net.dicomweb import DicomWebClient

    client = DicomWebClient(url, username, password)
    uids: list[str] = []
    try:
        while True:
            page = client.search_studies(
                {"limit": str(_QIDO_PAGE), "offset": str(len(uids)), "includefield": "0020000D"}
            )
            new = [u for u in (_study_uid(s) for s in page) if u and u not in uids]
            uids.extend(new)
            if len(page) < _QIDO_PAGE or not new:  # last page, or a server ignoring limit
                break
    finally:
        client.close()
    source = DicomWebStudy(url, username, password)
    return Listing(tuple(StudyJob(uid, dicomweb=source) for uid in dict.fromkeys(uids)))


def _study_uid(item: dict[str, object]) -> str:
    element = item.get(STUDY_INSTANCE_UID)
    values = element.get("Value") if isinstance(element, dict) else None
    return str(values[0]) if isinstance(values, list) and values else ""


def shard(items: Sequence[T], part: int, parts: int, key: str = "study_uid") -> list[T]:
    """The items of shard ``part`` (0-based) of ``parts``, chosen by a stable hash of
    each item's ``key`` attribute, so every shard is the same on every run.

    Raises:
        ConfigError: ``part`` is not in ``0 .. parts - 1``.

    Example:
        >>> len(shard([StudyJob("1.2", files=(("a", b""),))], 0, 1))
        1
    """
    if parts < 1 or not 0 <= part < parts:
        raise ConfigError(f"--part must be in 0..{parts - 1} (--parts {parts}), got {part}")
    if parts == 1:
        return list(items)
    return [item for item in items if _bucket(str(getattr(item, key)), parts) == part]


def _bucket(text: str, parts: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") % parts
