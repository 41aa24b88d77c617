"""API schemas (the public shape of responses); pydantic stays at this edge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from radlens.store.worklist import WorklistEntry, waiting_s


class WorklistItemPublic(BaseModel):
    study_uid: str
    status: str
    priority: str | None
    modalities: list[str]
    n_instances: int
    received_at: datetime
    analyzed_at: datetime | None
    turnaround_s: float | None
    waiting_s: float
    analyses: int

    @classmethod
    def of(cls, entry: WorklistEntry) -> WorklistItemPublic:
        return cls(
            study_uid=entry.study_uid,
            status=entry.status.value,
            priority=None if entry.priority is None else entry.priority.name.lower(),
            modalities=list(entry.modalities),
            n_instances=entry.n_instances,
            received_at=entry.received_at,
            analyzed_at=entry.analyzed_at,
            turnaround_s=entry.turnaround_s,
            waiting_s=waiting_s(entry),
            analyses=entry.analyses,
        )


class StudyPublic(WorklistItemPublic):
    findings: dict[str, Any] | None

    @classmethod
    def of(cls, entry: WorklistEntry) -> StudyPublic:
        return cls(**WorklistItemPublic.of(entry).model_dump(), findings=entry.result)


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    database: bool
    migrations_at_head: bool
    models_loaded: int
    dicom_port: int | None
