"""Reading the worklist: studies in triage order, and one study with everything a reader needs.

Order: unsigned studies first, by the triage score (``radlens.triage.priority``: effective
priority level, the AI's within-level fraction, plus waiting time), then longest waiting;
signed studies last, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from radlens.domain.findings import Priority
from radlens.errors import NotFoundError
from radlens.store.db import Database
from radlens.store.models import (
    FindingReviewRow,
    InstanceRow,
    JobRow,
    JobState,
    SeriesRow,
    StudyRow,
    StudyStatus,
    utcnow,
)
from radlens.triage.priority import TriageRules, effective_priority


@dataclass(frozen=True)
class TopFinding:
    label: str
    probability: float
    ood_flag: bool


@dataclass(frozen=True)
class Report:
    text: str = ""
    updated_at: datetime | None = None
    updated_by: str = ""
    signed_at: datetime | None = None
    signed_by: str = ""


@dataclass(frozen=True)
class WorklistEntry:
    """One study on the worklist. ``priority`` is None until the study is analyzed."""

    study_uid: str
    status: StudyStatus
    ai_priority: Priority | None
    radiologist_priority: Priority | None
    score: float
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    n_instances: int
    received_at: datetime
    analyzed_at: datetime | None
    first_viewed_at: datetime | None
    signed_at: datetime | None
    analyses: int
    n_positive: int = 0
    low_trust: bool = False
    top_finding: TopFinding | None = None
    result: dict[str, Any] | None = field(default=None, repr=False)
    report: Report = field(default_factory=Report, repr=False)

    @property
    def priority(self) -> Priority | None:
        """The effective priority: the higher of the AI's and the radiologist's."""
        return effective_priority(self.ai_priority, self.radiologist_priority)

    @property
    def turnaround_s(self) -> float | None:
        """Seconds from the first instance received to the newest result."""
        if self.analyzed_at is None:
            return None
        return (self.analyzed_at - self.received_at).total_seconds()

    @property
    def time_to_view_s(self) -> float | None:
        """Seconds from the result to the first time a reader opened the study."""
        if self.analyzed_at is None or self.first_viewed_at is None:
            return None
        return max((self.first_viewed_at - self.analyzed_at).total_seconds(), 0.0)

    @property
    def waiting_s(self) -> float:
        """Seconds since receipt, until signed."""
        end = self.signed_at or utcnow()
        return max((end - self.received_at).total_seconds(), 0.0)


@dataclass(frozen=True)
class SeriesListing:
    """A series with its instances in Instance Number order (for the viewer)."""

    series_uid: str
    modality: str
    body_part: str
    instances: tuple[tuple[str, int], ...]  # (SOP Instance UID, frames)


def list_worklist(
    db: Database,
    rules: TriageRules | None = None,
    modality: str = "",
    status: str = "",
    priority: str = "",
) -> list[WorklistEntry]:
    """Studies in triage order.

    Args:
        modality: keep studies with a series of this modality ("" = all).
        status: keep studies in this status ("" = all).
        priority: keep studies whose effective priority is this one ("" = all).
    """
    rules = rules or TriageRules()
    with db.sessions() as session:
        query = select(StudyRow)
        if status:
            query = query.where(StudyRow.status == StudyStatus(status))
        if modality:
            query = query.where(
                StudyRow.study_uid.in_(
                    select(SeriesRow.study_uid).where(SeriesRow.modality == modality.upper())
                )
            )
        studies = session.scalars(query).all()
        uids = [s.study_uid for s in studies]
        series = _series_facts(session, uids)
        analyses = _analyses(session, uids)
        entries = [_entry(s, rules, series, analyses, with_result=False) for s in studies]
    if priority:
        wanted = Priority[priority.upper()]
        entries = [e for e in entries if e.priority is wanted]
    signed = [e for e in entries if e.status is StudyStatus.SIGNED]
    open_ = [e for e in entries if e.status is not StudyStatus.SIGNED]
    open_.sort(key=lambda e: (-e.score, e.received_at, e.study_uid))
    signed.sort(key=lambda e: e.signed_at or e.received_at, reverse=True)
    return open_ + signed


def get_study(db: Database, study_uid: str, rules: TriageRules | None = None) -> WorklistEntry:
    """One study with its findings document.

    Raises:
        NotFoundError: no study with this UID is stored.
    """
    with db.sessions() as session:
        study = session.get(StudyRow, study_uid)
        if study is None:
            raise NotFoundError("no study with this Study Instance UID")
        uids = [study_uid]
        return _entry(
            study, rules or TriageRules(), _series_facts(session, uids), _analyses(session, uids)
        )


def list_series(db: Database, study_uid: str) -> list[SeriesListing]:
    """The study's series and instances, in Instance Number order."""
    with db.sessions() as session:
        series = session.scalars(
            select(SeriesRow).where(SeriesRow.study_uid == study_uid).order_by(SeriesRow.series_uid)
        ).all()
        rows = session.execute(
            select(InstanceRow.series_uid, InstanceRow.sop_uid, InstanceRow.frames)
            .where(InstanceRow.study_uid == study_uid)
            .order_by(
                InstanceRow.series_uid,
                InstanceRow.instance_number.is_(None),
                InstanceRow.instance_number,
                InstanceRow.sop_uid,
            )
        ).all()
    by_series: dict[str, list[tuple[str, int]]] = {}
    for series_uid, sop_uid, frames in rows:
        by_series.setdefault(series_uid, []).append((sop_uid, frames))
    return [
        SeriesListing(s.series_uid, s.modality, s.body_part, tuple(by_series.get(s.series_uid, ())))
        for s in series
    ]


def latest_reviews(db: Database, study_uid: str) -> dict[str, FindingReviewRow]:
    """The newest review of each finding of the study, by finding id."""
    with db.sessions() as session:
        rows = session.scalars(
            select(FindingReviewRow)
            .where(FindingReviewRow.study_uid == study_uid)
            .order_by(FindingReviewRow.at, FindingReviewRow.id)
        ).all()
    return {row.finding_id: row for row in rows}


def _entry(
    study: StudyRow,
    rules: TriageRules,
    series: dict[str, tuple[tuple[str, ...], tuple[str, ...]]],
    analyses: dict[str, int],
    with_result: bool = True,
) -> WorklistEntry:
    ai = None if study.priority is None else Priority(study.priority)
    radiologist = (
        None if study.radiologist_priority is None else Priority(study.radiologist_priority)
    )
    modalities, body_parts = series.get(study.study_uid, ((), ()))
    positives = [
        f for s in (study.result or {}).get("series", []) for f in s["findings"] if f["positive"]
    ]
    top = max(positives, key=lambda f: float(f["probability"]), default=None)
    end = study.signed_at or utcnow()
    waited = max((end - study.received_at).total_seconds(), 0.0)
    return WorklistEntry(
        study_uid=study.study_uid,
        status=StudyStatus(study.status),
        ai_priority=ai,
        radiologist_priority=radiologist,
        score=rules.score(ai, study.ai_score, radiologist, waited),
        modalities=modalities,
        body_parts=body_parts,
        n_instances=study.n_instances,
        received_at=study.received_at,
        analyzed_at=study.analyzed_at,
        first_viewed_at=study.first_viewed_at,
        signed_at=study.signed_at,
        analyses=analyses.get(study.study_uid, 0),
        n_positive=len(positives),
        low_trust=any(f.get("ood_flag") for f in positives),
        top_finding=None
        if top is None
        else TopFinding(top["label"], float(top["probability"]), bool(top.get("ood_flag"))),
        result=study.result if with_result else None,
        report=Report(
            study.report_text,
            study.report_updated_at,
            study.report_updated_by,
            study.signed_at,
            study.signed_by,
        )
        if with_result
        else Report(),
    )


def _series_facts(
    session: Session, uids: list[str]
) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    found: dict[str, tuple[set[str], set[str]]] = {}
    rows = session.execute(
        select(SeriesRow.study_uid, SeriesRow.modality, SeriesRow.body_part).where(
            SeriesRow.study_uid.in_(uids)
        )
    )
    for uid, modality, body_part in rows:
        modalities, parts = found.setdefault(uid, (set(), set()))
        modalities.add(modality)
        parts.add(body_part)
    return {
        uid: (tuple(sorted(m for m in mods if m)), tuple(sorted(p for p in parts if p)))
        for uid, (mods, parts) in found.items()
    }


def _analyses(session: Session, uids: list[str]) -> dict[str, int]:
    rows = session.execute(
        select(JobRow.study_uid, func.count())
        .where(JobRow.study_uid.in_(uids), JobRow.state == JobState.DONE)
        .group_by(JobRow.study_uid)
    )
    return {uid: int(n) for uid, n in rows}


@dataclass(frozen=True)
class StoredInstance:
    sop_uid: str
    path: Path
    instance_number: int | None
    frames: int


def series_instances(
    db: Database, storage_dir: Path, study_uid: str, series_uid: str, sop_uid: str = ""
) -> list[StoredInstance]:
    """Stored instances of one series (or the one with ``sop_uid``), Instance Number order.

    Raises:
        NotFoundError: no such series in the study (or no such instance in the series).
    """
    with db.sessions() as session:
        query = select(
            InstanceRow.sop_uid, InstanceRow.path, InstanceRow.instance_number, InstanceRow.frames
        ).where(InstanceRow.study_uid == study_uid, InstanceRow.series_uid == series_uid)
        if sop_uid:
            query = query.where(InstanceRow.sop_uid == sop_uid)
        rows = session.execute(
            query.order_by(
                InstanceRow.instance_number.is_(None),
                InstanceRow.instance_number,
                InstanceRow.sop_uid,
            )
        ).all()
    if not rows:
        raise NotFoundError("no such instance" if sop_uid else "no such series in this study")
    return [
        StoredInstance(uid, storage_dir / path, number, frames)
        for uid, path, number, frames in rows
    ]
