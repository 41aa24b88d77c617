"""Reading the worklist: studies in priority order, and one study with its findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from radlens.domain.findings import Priority
from radlens.store.db import Database
from radlens.store.models import JobRow, JobState, SeriesRow, StudyRow, StudyStatus, utcnow


@dataclass(frozen=True)
class WorklistEntry:
    """One study on the worklist. ``priority`` is None until the study is analyzed."""

    study_uid: str
    status: StudyStatus
    priority: Priority | None
    modalities: tuple[str, ...]
    n_instances: int
    received_at: datetime
    analyzed_at: datetime | None
    analyses: int
    result: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def turnaround_s(self) -> float | None:
        """Seconds from the first instance received to the newest result."""
        if self.analyzed_at is None:
            return None
        return (self.analyzed_at - self.received_at).total_seconds()


def list_worklist(db: Database, modality: str = "", status: str = "") -> list[WorklistEntry]:
    """Studies, most urgent first, then longest waiting first.

    Args:
        modality: keep studies with a series of this modality ("" = all).
        status: keep studies in this status ("" = all).
    """
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
        query = query.order_by(
            func.coalesce(StudyRow.priority, int(Priority.ROUTINE)).desc(),
            StudyRow.received_at,
            StudyRow.study_uid,
        )
        studies = session.scalars(query).all()
        uids = [s.study_uid for s in studies]
        modalities = _modalities(session, uids)
        analyses = _analyses(session, uids)
        return [_entry(s, modalities, analyses, with_result=False) for s in studies]


def get_study(db: Database, study_uid: str) -> WorklistEntry | None:
    """One study with its findings document, or None when it is not stored."""
    with db.sessions() as session:
        study = session.get(StudyRow, study_uid)
        if study is None:
            return None
        uids = [study_uid]
        return _entry(study, _modalities(session, uids), _analyses(session, uids), True)


def waiting_s(entry: WorklistEntry) -> float:
    return (utcnow() - entry.received_at).total_seconds()


def _entry(
    study: StudyRow,
    modalities: dict[str, tuple[str, ...]],
    analyses: dict[str, int],
    with_result: bool,
) -> WorklistEntry:
    return WorklistEntry(
        study_uid=study.study_uid,
        status=StudyStatus(study.status),
        priority=None if study.priority is None else Priority(study.priority),
        modalities=modalities.get(study.study_uid, ()),
        n_instances=study.n_instances,
        received_at=study.received_at,
        analyzed_at=study.analyzed_at,
        analyses=analyses.get(study.study_uid, 0),
        result=study.result if with_result else None,
    )


def _modalities(session: Session, uids: list[str]) -> dict[str, tuple[str, ...]]:
    found: dict[str, set[str]] = {}
    rows = session.execute(
        select(SeriesRow.study_uid, SeriesRow.modality).where(SeriesRow.study_uid.in_(uids))
    )
    for uid, modality in rows:
        found.setdefault(uid, set()).add(modality)
    return {uid: tuple(sorted(m for m in mods if m)) for uid, mods in found.items()}


def _analyses(session: Session, uids: list[str]) -> dict[str, int]:
    rows = session.execute(
        select(JobRow.study_uid, func.count())
        .where(JobRow.study_uid.in_(uids), JobRow.state == JobState.DONE)
        .group_by(JobRow.study_uid)
    )
    return {uid: int(n) for uid, n in rows}
