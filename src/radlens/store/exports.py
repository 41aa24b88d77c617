"""FHIR resources of stored studies, for the ``/fhir`` routes of the reading room.

A study's resources are built on request by ``report.fhir`` from what is stored: the
findings document (``findings_json.from_json``), the DICOM context read from the headers
of the stored files (patient, dates, series, instances: the database holds no patient
identifiers) and the report: once signed, its text makes the ``DiagnosticReport`` final.

The ``fhir_resources`` table maps every resource id to its study, so a read by id finds
the study without building every study's resources. :func:`index_result` writes it with
each result (``JobQueue.complete``); studies analyzed before the table existed are
indexed by :func:`index_missing` on the first read that misses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from radlens.domain.findings import StudyResult
from radlens.domain.imaging import Study
from radlens.domain.reports import SignedReport
from radlens.errors import NotFoundError
from radlens.io.scan import scan
from radlens.report.fhir import fhir_resources, resource_ids, to_fhir
from radlens.report.findings_json import from_json
from radlens.store.db import Database
from radlens.store.drafts import study_draft
from radlens.store.files import reading_stored
from radlens.store.models import FhirResourceRow, InstanceRow, StudyRow
from radlens.warning_scopes import ignoring

READABLE = ("DiagnosticReport", "Observation", "ImagingStudy", "Device")
"""Resource types a client can read by id."""


@dataclass(frozen=True)
class _Stored:
    study: Study
    result: StudyResult
    signed: SignedReport | None
    analyzed_at: datetime | None  # time-zone aware
    draft: str | None  # the composed draft (notes, prior) the reading room shows


def index_result(session: Session, result: StudyResult) -> None:
    """Record the FHIR ids of ``result`` (replacing those of an earlier analysis)."""
    uid = result.study_instance_uid
    session.execute(delete(FhirResourceRow).where(FhirResourceRow.study_uid == uid))
    session.add_all(
        FhirResourceRow(resource_type=kind, resource_id=rid, study_uid=uid)
        for kind, rid in dict.fromkeys(resource_ids(result))
    )


def index_missing(db: Database) -> int:
    """Index every analyzed study that has no FHIR ids yet; return how many."""
    try:
        with db.sessions.begin() as session:
            indexed = select(FhirResourceRow.study_uid)
            rows = session.scalars(
                select(StudyRow).where(
                    StudyRow.result.is_not(None), StudyRow.study_uid.not_in(indexed)
                )
            ).all()
            for row in rows:
                index_result(session, from_json(row.result or {}))
            return len(rows)
    except IntegrityError:  # a completing analysis indexed one of them meanwhile
        return 0


def study_bundle(db: Database, storage_dir: Path, study_uid: str) -> dict[str, Any]:
    """The study's transaction Bundle (what ``radlens analyze --fhir`` writes).

    Raises:
        NotFoundError: no such study, or it has no result yet.
    """
    stored = _load(db, storage_dir, study_uid)
    return to_fhir(stored.study, stored.result, stored.signed, stored.analyzed_at, stored.draft)


def study_reports(db: Database, storage_dir: Path, study_uid: str) -> list[dict[str, Any]]:
    """The study's ``DiagnosticReport`` in a list; empty for an unknown or unanalyzed study."""
    with db.sessions() as session:
        row = session.get(StudyRow, study_uid)
        if row is None or row.result is None:
            return []
    return [
        r
        for r in _resources(_load(db, storage_dir, study_uid))
        if r["resourceType"] == "DiagnosticReport"
    ]


def read_resource(
    db: Database, storage_dir: Path, resource_type: str, resource_id: str
) -> dict[str, Any]:
    """One resource by type and id, referring to the others as ``Type/id``.

    Raises:
        NotFoundError: no resource of this type with this id.
    """
    if resource_type not in READABLE:
        raise NotFoundError(f"this server reads {', '.join(READABLE)} resources by id")
    uid = _study_of(db, resource_type, resource_id)
    for resource in _resources(_load(db, storage_dir, uid)):
        if resource["resourceType"] == resource_type and resource["id"] == resource_id:
            return resource
    raise NotFoundError(f"no {resource_type} with this id")


def _study_of(db: Database, resource_type: str, resource_id: str) -> str:
    query = (
        select(FhirResourceRow.study_uid)
        .where(
            FhirResourceRow.resource_type == resource_type,
            FhirResourceRow.resource_id == resource_id,
        )
        .order_by(FhirResourceRow.study_uid)
        .limit(1)
    )
    with db.sessions() as session:
        uid = session.scalar(query)
    if uid is None and index_missing(db):
        with db.sessions() as session:
            uid = session.scalar(query)
    if uid is None:
        raise NotFoundError(f"no {resource_type} with this id")
    return uid


def _resources(stored: _Stored) -> list[dict[str, Any]]:
    return fhir_resources(
        stored.study, stored.result, stored.signed, stored.analyzed_at, stored.draft
    )


def _load(db: Database, storage_dir: Path, study_uid: str) -> _Stored:
    with db.sessions() as session:
        row = session.get(StudyRow, study_uid)
        if row is None:
            raise NotFoundError("no study with this Study Instance UID")
        if row.result is None:
            raise NotFoundError("the study has no result yet")
        result = from_json(row.result)
        signed = None
        if row.signed_at is not None and row.report_text.strip():
            signed_at = row.signed_at.replace(tzinfo=UTC)
            signed = SignedReport(row.report_text, signed_at, row.signed_by)
        analyzed_at = None if row.analyzed_at is None else row.analyzed_at.replace(tzinfo=UTC)
        paths = session.scalars(
            select(InstanceRow.path).where(InstanceRow.study_uid == study_uid)
        ).all()
    with reading_stored(storage_dir, db.keys):
        study = _stored_study(study_uid, [storage_dir / p for p in paths])
    draft = study_draft(db, storage_dir, study_uid).draft if signed is None else None
    return _Stored(study, result, signed, analyzed_at, draft.text if draft else None)


def _stored_study(study_uid: str, paths: list[Path]) -> Study:
    """The study's DICOM context from the headers of its stored files."""
    if paths:
        with ignoring():  # intake already accepted these files
            found = scan(paths)
        for study in found.studies:
            if study.study_instance_uid == study_uid:
                return study
    raise NotFoundError("the stored files of this study cannot be read")
