"""The feedback package's reads of the store: feedback records, analyzed findings, and
the equipment of each series. The one module of ``feedback/`` that speaks SQL
(``tests/test_layering.py``); it writes only the equipment columns it fills.

A series' equipment (Manufacturer, ManufacturerModelName, StationName) is read from one of
its stored files the first time it is needed and kept in ``series`` (migration 0008), so
monitoring and the learning queue open no file twice. A file that cannot be read (no key,
damaged) leaves the equipment unknown and is tried again next time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from radlens.errors import InputError
from radlens.feedback.adjudication import Adjudication, AdjudicationRule, adjudicate_all
from radlens.feedback.equipment import Equipment
from radlens.feedback.monitor import Observed
from radlens.feedback.queue import Candidate
from radlens.feedback.records import FeedbackRecord, ShownFinding, box_tuple
from radlens.io.dicom import read_instance
from radlens.store.db import Database
from radlens.store.files import read_stored
from radlens.store.models import FindingReviewRow, InstanceRow, SeriesRow, StudyRow, StudyStatus
from radlens.warning_scopes import ignoring

OPEN_STATUSES = (StudyStatus.READY, StudyStatus.IN_REVIEW)
_FIELD_LENGTH = 64


@dataclass(frozen=True)
class StoredFinding:
    """An AI finding in a stored study's current result."""

    study_uid: str
    finding_id: str
    series_uid: str
    shown: ShownFinding
    status: str
    received_at: datetime
    analyzed_at: datetime


def feedback_records(
    db: Database,
    model_name: str = "",
    since: datetime | None = None,
    study_uid: str = "",
) -> list[FeedbackRecord]:
    """Every stored decision (oldest first), optionally of one model, since a time, or of
    one study."""
    query = select(FindingReviewRow).order_by(FindingReviewRow.at, FindingReviewRow.id)
    if model_name:
        query = query.where(FindingReviewRow.model_name == model_name)
    if since is not None:
        query = query.where(FindingReviewRow.at >= since)
    if study_uid:
        query = query.where(FindingReviewRow.study_uid == study_uid)
    with db.sessions() as session:
        rows = session.scalars(query).all()
    return [record_of(row) for row in rows]


def record_of(row: FindingReviewRow) -> FeedbackRecord:
    """The feedback record of one ``finding_reviews`` row."""
    return FeedbackRecord(
        id=row.id,
        study_uid=row.study_uid,
        finding_id=row.finding_id,
        reader=row.username,
        at=row.at,
        decision=row.decision,
        shown=ShownFinding.from_dict(row.finding),
        label=row.label,
        grade=row.grade,
        confidence=row.confidence,
        box_px=None if row.box_px is None else box_tuple(row.box_px),
        note=row.note,
    )


def stored_adjudications(
    db: Database,
    rule: AdjudicationRule | str,
    senior_readers: Iterable[str] = (),
    model_name: str = "",
    study_uid: str = "",
) -> dict[tuple[str, str], Adjudication]:
    """The adjudication of every reviewed finding (of one model or study, when given)."""
    records = feedback_records(db, model_name, study_uid=study_uid)
    return adjudicate_all(records, rule, frozenset(senior_readers))


def stored_findings(
    db: Database,
    model_name: str = "",
    since: datetime | None = None,
    open_only: bool = False,
) -> list[StoredFinding]:
    """The AI findings of the analyzed studies' current results (of one model, of studies
    analyzed since a time, of open studies only, when asked)."""
    query = select(StudyRow).where(StudyRow.analyzed_at.is_not(None))
    if since is not None:
        query = query.where(StudyRow.analyzed_at >= since)
    if open_only:
        query = query.where(StudyRow.status.in_([s.value for s in OPEN_STATUSES]))
    found = []
    with db.sessions() as session:
        for study in session.scalars(query.order_by(StudyRow.received_at)):
            assert study.analyzed_at is not None  # the query says so
            for series in (study.result or {}).get("series", []) or []:
                for doc in series.get("findings", []) or []:
                    if model_name and doc.get("model_name") != model_name:
                        continue
                    if "id" not in doc:
                        continue
                    found.append(
                        StoredFinding(
                            study.study_uid,
                            str(doc["id"]),
                            str(series.get("series_instance_uid", "")),
                            ShownFinding.from_dict(doc),
                            study.status,
                            study.received_at,
                            study.analyzed_at,
                        )
                    )
    return found


def series_equipment(
    db: Database, storage_dir: Path, series_uids: Iterable[str]
) -> dict[str, Equipment]:
    """The equipment of each series (read from a stored file once, then kept)."""
    wanted = sorted(set(series_uids))
    found: dict[str, Equipment] = {}
    if not wanted:
        return found
    with db.sessions.begin() as session:
        rows = session.scalars(select(SeriesRow).where(SeriesRow.series_uid.in_(wanted))).all()
        unread = [r for r in rows if r.manufacturer is None]
        paths = _first_files(session, [r.series_uid for r in unread])
        for row in unread:
            read = _read_equipment(db, storage_dir, paths.get(row.series_uid))
            if read is not None:
                row.manufacturer = read.manufacturer[:_FIELD_LENGTH]
                row.manufacturer_model = read.manufacturer_model[:_FIELD_LENGTH]
                row.station_name = read.station_name[:_FIELD_LENGTH]
        for row in rows:
            found[row.series_uid] = Equipment(
                row.manufacturer or "", row.manufacturer_model or "", row.station_name or ""
            )
    return found


def observed_findings(
    db: Database, storage_dir: Path, model_name: str = "", since: datetime | None = None
) -> list[Observed]:
    """The findings monitoring summarizes, with their series' equipment."""
    findings = stored_findings(db, model_name, since)
    equipment = series_equipment(db, storage_dir, (f.series_uid for f in findings))
    return [
        Observed(
            f.study_uid,
            f.finding_id,
            f.shown,
            equipment.get(f.series_uid, Equipment()),
            f.analyzed_at,
        )
        for f in findings
    ]


def queue_candidates(
    db: Database,
    storage_dir: Path,
    rule: AdjudicationRule | str,
    senior_readers: Iterable[str] = (),
    model_name: str = "",
) -> list[Candidate]:
    """The findings of open studies, with their readers' votes and equipment."""
    findings = stored_findings(db, model_name, open_only=True)
    judged = stored_adjudications(db, rule, senior_readers, model_name)
    equipment = series_equipment(db, storage_dir, (f.series_uid for f in findings))
    return [
        Candidate(
            f.study_uid,
            f.finding_id,
            f.shown,
            equipment.get(f.series_uid, Equipment()),
            f.received_at,
            judged.get((f.study_uid, f.finding_id)),
        )
        for f in findings
    ]


def instance_file(db: Database, sop_instance_uid: str) -> tuple[str, str, int] | None:
    """(study UID, stored path relative to the storage folder, frames) of an instance."""
    with db.sessions() as session:
        row = session.execute(
            select(InstanceRow.study_uid, InstanceRow.path, InstanceRow.frames).where(
                InstanceRow.sop_uid == sop_instance_uid
            )
        ).first()
    return None if row is None else (str(row[0]), str(row[1]), int(row[2]))


def _first_files(session: Any, series_uids: list[str]) -> dict[str, str]:
    if not series_uids:
        return {}
    rows = session.execute(
        select(InstanceRow.series_uid, InstanceRow.path)
        .where(InstanceRow.series_uid.in_(series_uids))
        .order_by(InstanceRow.series_uid, InstanceRow.path)
    ).all()
    first: dict[str, str] = {}
    for series_uid, path in rows:
        first.setdefault(series_uid, path)
    return first


def _read_equipment(db: Database, storage_dir: Path, path: str | None) -> Equipment | None:
    if path is None:
        return None
    full = storage_dir / path
    try:
        data = read_stored(storage_dir, full, db.keys)
        with ignoring():  # intake already accepted this file
            series = read_instance(full, data).series
    except (InputError, OSError):
        return None
    return Equipment(series.manufacturer, series.manufacturer_model, series.station_name)
