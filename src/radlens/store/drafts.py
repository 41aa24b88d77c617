"""The AI draft report of a stored study: its DICOM context, clinical notes and prior study.

The draft is composed on request (``report.compose``) from what is stored, so it follows
the newest notes, result and priors without being stored itself:

* the **DICOM context** (procedure, reason for study, patient age and sex, series) from the
  header of one stored file per series;
* the **clinical notes** of the study (``PUT /api/studies/{uid}/notes``: free text, a prior
  report, or HL7 v2 ORM/ORU text), kept in ``studies.notes_text``;
* the **latest prior study** of the same patient (:func:`latest_prior`).

Priors are found by ``studies.patient_key``: an HMAC-SHA256 of the Patient ID under a
random key kept in the storage folder (:func:`patient_secret`), written at intake. The
database thus holds no Patient ID, and a copy of it alone cannot be searched for one.
"Earlier" compares Study Date and Time, or the time received where a study has no date.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from radlens.domain.findings import finding_id
from radlens.domain.imaging import Study
from radlens.domain.reports import PriorStudy
from radlens.errors import ConflictError, InputError, NotFoundError
from radlens.io.dicom import read_instance
from radlens.nlp import Alignment
from radlens.report.compose import Draft, compose
from radlens.report.findings_json import from_json
from radlens.store.db import Database
from radlens.store.files import reading_stored, write_durably
from radlens.store.models import InstanceRow, StudyRow, utcnow
from radlens.warning_scopes import ignoring

MAX_NOTES_CHARS = 100_000
PATIENT_KEY_FILE = "patient-key"
_SECRET_BYTES = 32


@dataclass(frozen=True)
class Notes:
    """The clinical notes stored with a study."""

    text: str = field(default="", repr=False)
    updated_at: datetime | None = None
    updated_by: str = ""


@dataclass(frozen=True, eq=False)
class StudyDraft:
    """What the reading room shows beside the findings.

    Attributes:
        notes: the stored clinical notes.
        draft: the composed draft, or None until the study is analyzed.
        concordance: finding id -> the notes versus that AI finding.
    """

    notes: Notes
    draft: Draft | None = None
    concordance: dict[str, Alignment] = field(default_factory=dict)


def patient_secret(storage_dir: Path) -> bytes:
    """The random key of the patient keys, made once per storage folder (mode 0600)."""
    path = storage_dir / PATIENT_KEY_FILE
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        temp = storage_dir / f".{PATIENT_KEY_FILE}-{uuid.uuid4().hex}.tmp"
        write_durably(temp, os.urandom(_SECRET_BYTES))
        try:
            os.link(temp, path)  # atomic; the first writer wins
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
        secret = path.read_bytes()
    if len(secret) != _SECRET_BYTES:
        raise InputError(path, "patient key file is damaged; restore it from backup")
    return secret


def patient_key(secret: bytes, patient_id: str) -> str | None:
    """The pseudonymous key of a Patient ID (None for an empty one).

    Example:
        >>> patient_key(b"k" * 32, "PID-1") == patient_key(b"k" * 32, " PID-1 ")
        True
    """
    cleaned = patient_id.strip()
    if not cleaned:
        return None
    return hmac.new(secret, cleaned.encode("utf-8"), hashlib.sha256).hexdigest()


def save_notes(db: Database, study_uid: str, text: str, username: str) -> Notes:
    """Store the clinical notes of a study (replacing earlier ones).

    Raises:
        NotFoundError: no such study.
        ConflictError: the text is too long.
    """
    if len(text) > MAX_NOTES_CHARS:
        raise ConflictError(f"notes have at most {MAX_NOTES_CHARS} characters")
    now = utcnow()
    with db.sessions.begin() as session:
        study = session.get(StudyRow, study_uid)
        if study is None:
            raise NotFoundError("no study with this Study Instance UID")
        study.notes_text = text
        study.notes_updated_at = now
        study.notes_updated_by = username
    return Notes(text, now, username)


def latest_prior(db: Database, storage_dir: Path, study_uid: str) -> PriorStudy | None:
    """The latest earlier study of the same patient, with its stored findings; None when
    there is none (or the study has no Patient ID).

    Raises:
        NotFoundError: no such study.
    """
    with db.sessions() as session, reading_stored(storage_dir, db.keys):
        row = _row(session, study_uid)
        return _latest_prior(session, storage_dir, row, _context(session, storage_dir, row))


def study_draft(db: Database, storage_dir: Path, study_uid: str) -> StudyDraft:
    """The notes, the composed draft and the concordance per finding id of a study.

    Raises:
        NotFoundError: no such study.
    """
    with db.sessions() as session:
        row = _row(session, study_uid)
        notes = Notes(row.notes_text, row.notes_updated_at, row.notes_updated_by)
        if row.result is None:
            return StudyDraft(notes)
        result = from_json(row.result)
        with reading_stored(storage_dir, db.keys):
            study = _context(session, storage_dir, row)
            prior = _latest_prior(session, storage_dir, row, study)
    draft = compose(study, result, prior, notes.text)
    ids = [finding_id(s.series_instance_uid, f) for s in result.series for f in s.findings]
    return StudyDraft(notes, draft, dict(zip(ids, draft.alignments, strict=True)))


def _row(session: Session, study_uid: str) -> StudyRow:
    row = session.get(StudyRow, study_uid)
    if row is None:
        raise NotFoundError("no study with this Study Instance UID")
    return row


def _headers(paths: list[Path]) -> list[Study]:
    found = []
    for path in paths:
        try:
            with ignoring():  # intake already accepted these files
                found.append(read_instance(path).study)
        except (InputError, OSError):
            continue  # an unreadable file leaves its part of the context out
    return found


def _context(session: Session, storage_dir: Path, row: StudyRow, one: bool = False) -> Study:
    """The study's DICOM context from one stored file per series (or one file in all)."""
    rows = session.execute(
        select(InstanceRow.series_uid, InstanceRow.path)
        .where(InstanceRow.study_uid == row.study_uid)
        .order_by(InstanceRow.series_uid, InstanceRow.path)
    ).all()
    first: dict[str, str] = {}
    for series_uid, path in rows:
        first.setdefault(series_uid, path)
    paths = [storage_dir / p for p in first.values()][: 1 if one else None]
    headers = _headers(paths)
    if not headers:
        return Study(row.study_uid, ())
    return replace(headers[0], series=tuple(s for h in headers for s in h.series))


def _when(study: Study, received_at: datetime) -> tuple[str, str]:
    """A sortable time stamp (Study Date and Time, else the time received) and its date."""
    stamp = study.when
    if not stamp:
        return received_at.strftime("%Y%m%d%H%M%S.%f"), received_at.date().isoformat()
    return stamp, f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}"


def _latest_prior(
    session: Session, storage_dir: Path, row: StudyRow, study: Study
) -> PriorStudy | None:
    key = row.patient_key
    if key is None:
        return None
    now, _ = _when(study, row.received_at)
    candidates = session.scalars(
        select(StudyRow).where(StudyRow.patient_key == key, StudyRow.study_uid != row.study_uid)
    ).all()
    best: tuple[str, str, Study, StudyRow] | None = None
    for candidate in candidates:
        context = _context(session, storage_dir, candidate, one=True)
        stamp, day = _when(context, candidate.received_at)
        if stamp < now and (best is None or stamp > best[0]):
            best = (stamp, day, context, candidate)
    if best is None:
        return None
    _, day, context, prior = best
    findings = from_json(prior.result).findings if prior.result is not None else ()
    return PriorStudy(
        prior.study_uid, day, context.description or context.requested_procedure, findings
    )
