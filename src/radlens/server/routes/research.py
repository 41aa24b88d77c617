"""De-identified data for researchers (``/api/research``): the studies with pseudonymous
UIDs and their AI findings, and each instance de-identified by PS3.15 Annex E
(``store.research``). The researcher role sees nothing else; admins may look too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from fastapi.concurrency import run_in_threadpool

from radlens.privacy.audit import AuditEvent
from radlens.privacy.roles import Action, Principal
from radlens.server.audit import audited
from radlens.server.authz import permit
from radlens.server.deps import ServicesDep
from radlens.server.schemas import ResearchFinding, ResearchSeries, ResearchStudy
from radlens.store import research

router = APIRouter(prefix="/api/research", tags=["research"])
_Researcher = Annotated[Principal, permit(Action.DEIDENTIFIED_READ)]
_UID = Annotated[str, Path(max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$")]


@router.get(
    "/studies",
    response_model=list[ResearchStudy],
    dependencies=[audited(AuditEvent.DEIDENTIFIED_QUERIED)],
)
async def studies(services: ServicesDep, _user: _Researcher) -> list[ResearchStudy]:
    """Every study, de-identified: pseudonymous UIDs, modality, state and AI findings."""
    found = await run_in_threadpool(
        research.deidentified_studies, services.db, services.settings.storage_dir
    )
    return [
        ResearchStudy(
            study_id=s.study_id,
            status=s.status,
            signed=s.signed,
            series=[ResearchSeries(**vars(x)) for x in s.series],
            findings=[ResearchFinding(**vars(f)) for f in s.findings],
        )
        for s in found
    ]


@router.get(
    "/instances/{instance_id}",
    response_class=Response,
    responses={
        200: {"content": {"application/dicom": {}}},
        404: {"description": "no instance has that pseudonym"},
        409: {"description": "withheld: the pixels may show patient data"},
    },
    dependencies=[audited(AuditEvent.DEIDENTIFIED_EXPORTED)],
)
async def instance(instance_id: _UID, services: ServicesDep, _user: _Researcher) -> Response:
    """One instance, de-identified (PS3.15 Annex E Basic Profile and radlens's options)."""
    data = await run_in_threadpool(
        research.deidentified_instance, services.db, services.settings.storage_dir, instance_id
    )
    return Response(data, media_type="application/dicom")
