"""The signed report of a study as a DICOM SR (``report.signed_sr``): made, kept, pushed.

:func:`export_signed_report` runs once a signature is committed (the sign route runs it
after answering): it makes the SR from the signed text and the headers of the study's
stored instances, keeps it next to the study's results
(``<storage>/results/<sha256 of the Study UID>/signed_<signing time>.dcm``) and hands it to
``push`` (the PACS, when pushing is on). A failure is logged and never undoes the
signature. :func:`signed_report_dicom` serves the kept file, making it first when it is
missing (a study signed before this existed, or a crash after the commit) and the study is
still signed. A study reopened by new images keeps serving the SR of its last signature
(its text may change until it is signed again). The SR's UIDs derive from the study and
the signing time, so a remade file is the same instance.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from sqlalchemy import select

from radlens.domain.reports import SignedReport
from radlens.errors import ConflictError, InputError, NotFoundError, RadlensError
from radlens.privacy.crypto import KeyRing
from radlens.report.equipment import to_bytes
from radlens.report.signed_sr import to_signed_sr
from radlens.store.db import Database
from radlens.store.files import read_stored, validate_uid, write_stored
from radlens.store.models import InstanceRow, StudyRow, StudyStatus
from radlens.warning_scopes import ignoring

log = logging.getLogger(__name__)

Push = Callable[[str, bytes], None]
"""Sends one signed report (Study Instance UID, PS3.10 bytes) on; logs its own errors."""


def signed_report_dicom(
    db: Database, storage_dir: Path, study_uid: str, organization: str
) -> bytes:
    """The signed report of the study as a DICOM SR file (PS3.10 bytes).

    Raises:
        NotFoundError: no such study.
        ConflictError: its report is not signed.
        InputError: its stored instances cannot be read, or lack what the SR copies.
    """
    report, frozen, paths = _signed(db, storage_dir, study_uid)
    path = signed_report_path(storage_dir, study_uid, report)
    try:
        return read_stored(storage_dir, path, db.keys)
    except FileNotFoundError:
        pass
    if not frozen:  # reopened by new images: the text may have changed since it was signed
        raise ConflictError("the report is not signed")
    data = to_bytes(to_signed_sr(_headers(storage_dir, paths, db.keys), report, organization))
    write_stored(storage_dir, path, data, db.keys)
    return data


def export_signed_report(
    db: Database, storage_dir: Path, study_uid: str, organization: str, push: Push | None = None
) -> bool:
    """Make and keep the SR of a just signed report and push it; False when it could not
    be made (logged: the signature stands)."""
    try:
        data = signed_report_dicom(db, storage_dir, study_uid, organization)
    except RadlensError as exc:
        log.error("no DICOM SR of a signed report: %s", exc)
        return False
    if push is not None:
        push(study_uid, data)
    return True


def signed_report_path(storage_dir: Path, study_uid: str, report: SignedReport) -> Path:
    """Where the SR of ``report`` is kept: named by hashes and the signing time."""
    digest = hashlib.sha256(validate_uid(study_uid, "Study Instance UID").encode()).hexdigest()
    when = report.signed_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return storage_dir / "results" / digest[:2] / digest / f"signed_{when}.dcm"


def _signed(
    db: Database, storage_dir: Path, study_uid: str
) -> tuple[SignedReport, bool, list[Path]]:
    """The last signed report, whether the study is still signed (its text frozen), and
    the study's stored instances."""
    with db.sessions() as session:
        study = session.get(StudyRow, study_uid)
        if study is None:
            raise NotFoundError("no study with this Study Instance UID")
        if study.signed_at is None or not study.report_text.strip():
            raise ConflictError("the report is not signed")
        report = SignedReport(
            study.report_text, study.signed_at.replace(tzinfo=UTC), study.signed_by
        )
        frozen = study.status == StudyStatus.SIGNED
        paths = session.scalars(
            select(InstanceRow.path)
            .where(InstanceRow.study_uid == study_uid)
            .order_by(InstanceRow.series_uid, InstanceRow.instance_number, InstanceRow.sop_uid)
        ).all()
    return report, frozen, [storage_dir / p for p in paths]


def _headers(storage_dir: Path, paths: list[Path], keys: KeyRing | None) -> list[pydicom.Dataset]:
    """The headers of the study's stored instances (the SR's evidence)."""
    headers: list[pydicom.Dataset] = []
    with ignoring():  # intake already accepted these files
        for path in paths:
            try:
                data = io.BytesIO(read_stored(storage_dir, path, keys))
                headers.append(pydicom.dcmread(data, stop_before_pixels=True))
            except (OSError, InvalidDicomError, InputError) as exc:
                raise InputError(None, "a stored instance of the study cannot be read") from exc
    return headers
