"""The worklist (``GET /api/worklist``) and one study (``GET /api/studies/{uid}``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from radlens.server.deps import ServicesDep
from radlens.server.schemas import StudyPublic, WorklistItemPublic
from radlens.store.models import StudyStatus
from radlens.store.worklist import get_study, list_worklist

router = APIRouter(prefix="/api", tags=["worklist"])


@router.get("/worklist", response_model=list[WorklistItemPublic])
def worklist(
    services: ServicesDep,
    modality: Annotated[str, Query(max_length=16)] = "",
    status: StudyStatus | None = None,
) -> list[WorklistItemPublic]:
    """Studies, most urgent first, then longest waiting first."""
    entries = list_worklist(services.db, modality, status.value if status else "")
    return [WorklistItemPublic.of(e) for e in entries]


@router.get("/studies/{study_uid}", response_model=StudyPublic)
def study(study_uid: str, services: ServicesDep) -> StudyPublic:
    """One study with its findings (``radlens.findings/1``; null until analyzed)."""
    entry = get_study(services.db, study_uid)
    if entry is None:
        raise HTTPException(404, "no study with this Study Instance UID")
    return StudyPublic.of(entry)
