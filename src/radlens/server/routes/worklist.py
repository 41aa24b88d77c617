"""The worklist and the reading of one study (``/api/worklist``, ``/api/studies/...``).

A study comes with its AI draft report and the concordance of its clinical notes with each
finding, composed on request from what is stored (``store.drafts``).

Every route needs a logged-in account whose role may do what the route does
(``server.authz.permit``); missing studies and findings raise ``NotFoundError``, signed
reports ``ConflictError``, another reader's draft ``ForbiddenError`` (``server/errors.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Response

from radlens.domain.findings import Priority
from radlens.feedback.views import study_adjudications
from radlens.net.pacs import signed_report_pusher
from radlens.privacy.audit import AuditEvent
from radlens.privacy.roles import Action, Principal
from radlens.server.audit import audited
from radlens.server.authz import permit
from radlens.server.deps import ServicesDep
from radlens.server.routes.feedback import feedback_policy
from radlens.server.schemas import (
    AdjudicationPublic,
    NotesIn,
    PriorityIn,
    PriorityName,
    ReportIn,
    ReportPublic,
    ReviewIn,
    ReviewPublic,
    SeriesPublic,
    StudyPublic,
    WorklistItemPublic,
)
from radlens.store import drafts, review, signed
from radlens.store.drafts import study_draft
from radlens.store.models import StudyStatus
from radlens.store.results import heatmap_png
from radlens.store.worklist import get_study, latest_reviews, list_series, list_worklist

router = APIRouter(prefix="/api", tags=["worklist"])
_Responses = dict[int | str, dict[str, Any]]
_NOT_FOUND: _Responses = {404: {"description": "no such study (or finding)"}}
_SIGNED: _Responses = {409: {"description": "the report is signed"}}


@router.get(
    "/worklist",
    response_model=list[WorklistItemPublic],
    dependencies=[audited(AuditEvent.WORKLIST_VIEWED)],
)
def worklist(
    services: ServicesDep,
    _user: Annotated[Principal, permit(Action.WORKLIST_READ)],
    modality: Annotated[str, Query(max_length=16)] = "",
    status: StudyStatus | None = None,
    priority: PriorityName | None = None,
) -> list[WorklistItemPublic]:
    """Open studies by triage score (priority, probability, trust, waiting); signed last."""
    entries = list_worklist(
        services.db, services.rules, modality, status.value if status else "", priority or ""
    )
    return [WorklistItemPublic.of(e) for e in entries]


@router.get(
    "/studies/{study_uid}",
    response_model=StudyPublic,
    responses=_NOT_FOUND,
    dependencies=[audited(AuditEvent.STUDY_VIEWED)],
)
def study(
    study_uid: str, services: ServicesDep, _user: Annotated[Principal, permit(Action.STUDY_READ)]
) -> StudyPublic:
    """One study: findings (``radlens.findings/2``), decisions, report, series, notes, the
    AI draft report and the concordance of the notes with each finding."""
    return _study(services, study_uid)


@router.post(
    "/studies/{study_uid}/open",
    response_model=StudyPublic,
    responses=_NOT_FOUND,
    dependencies=[audited(AuditEvent.STUDY_OPENED)],
)
def open_study(
    study_uid: str, services: ServicesDep, _user: Annotated[Principal, permit(Action.STUDY_OPEN)]
) -> StudyPublic:
    """A reader opened the study: first view recorded; ready -> in review."""
    review.open_study(services.db, study_uid)
    return _study(services, study_uid)


@router.put(
    "/studies/{study_uid}/findings/{finding_id}/review",
    response_model=ReviewPublic,
    responses=_NOT_FOUND | _SIGNED,
    dependencies=[audited(AuditEvent.FINDING_REVIEWED)],
)
def review_finding(
    study_uid: str,
    finding_id: str,
    body: ReviewIn,
    services: ServicesDep,
    user: Annotated[Principal, permit(Action.FINDINGS_REVIEW)],
) -> ReviewPublic:
    """Accept, reject or edit one AI finding (kept for the feedback loop)."""
    row = review.review_finding(
        services.db,
        study_uid,
        finding_id,
        body.decision,
        user.username,
        body.label,
        body.grade,
        body.note,
        confidence=body.confidence,
        box_px=body.box_px,
    )
    return ReviewPublic.of(row)


@router.put(
    "/studies/{study_uid}/report",
    response_model=ReportPublic,
    responses=_NOT_FOUND | _SIGNED,
    dependencies=[audited(AuditEvent.REPORT_SAVED)],
)
def save_report(
    study_uid: str,
    body: ReportIn,
    services: ServicesDep,
    user: Annotated[Principal, permit(Action.REPORT_WRITE)],
) -> ReportPublic:
    """Save the report text (a draft until signed). A draft is its author's: another
    radiologist gets 403; an admin may take it over."""
    review.save_report(services.db, study_uid, body.text, user.username, user.role)
    return _study(services, study_uid).report


@router.put(
    "/studies/{study_uid}/notes",
    response_model=StudyPublic,
    responses=_NOT_FOUND,
    dependencies=[audited(AuditEvent.NOTES_SAVED)],
)
def save_notes(
    study_uid: str,
    body: NotesIn,
    services: ServicesDep,
    user: Annotated[Principal, permit(Action.NOTES_WRITE)],
) -> StudyPublic:
    """Store clinical notes or a prior report (free text or HL7 v2 ORM/ORU); the study
    comes back with its draft and concordance recomputed from them."""
    drafts.save_notes(services.db, study_uid, body.text, user.username)
    return _study(services, study_uid)


@router.post(
    "/studies/{study_uid}/sign",
    response_model=StudyPublic,
    responses=_NOT_FOUND | {409: {"description": "signed already, not analyzed, or empty"}},
    dependencies=[audited(AuditEvent.REPORT_SIGNED)],
)
def sign(
    study_uid: str,
    services: ServicesDep,
    user: Annotated[Principal, permit(Action.REPORT_SIGN)],
    background: BackgroundTasks,
) -> StudyPublic:
    """Sign the report; the study leaves the open worklist. Once answered, the signed report
    is made a DICOM SR (``report.dcm``) and, when results go to a PACS, pushed there. Only
    the author of the saved draft signs it (403 for anyone else)."""
    review.sign(services.db, study_uid, user.username)
    background.add_task(_export_signed_report, services, study_uid)
    return _study(services, study_uid)


@router.get(
    "/studies/{study_uid}/report.dcm",
    response_class=Response,
    responses=_NOT_FOUND
    | {
        200: {"content": {"application/dicom": {}}},
        409: {"description": "the report is not signed"},
    },
    dependencies=[audited(AuditEvent.EXPORTED)],
)
def signed_report(
    study_uid: str,
    services: ServicesDep,
    _user: Annotated[Principal, permit(Action.REPORT_EXPORT)],
) -> Response:
    """The signed report as a DICOM Enhanced SR (TID 2000, verified) in the study."""
    data = signed.signed_report_dicom(
        services.db, services.settings.storage_dir, study_uid, services.settings.site_name
    )
    return Response(
        data,
        media_type="application/dicom",
        headers={"Content-Disposition": 'attachment; filename="report.dcm"'},
    )


@router.put(
    "/studies/{study_uid}/priority",
    response_model=StudyPublic,
    responses=_NOT_FOUND,
    dependencies=[audited(AuditEvent.PRIORITY_CHANGED)],
)
def set_priority(
    study_uid: str,
    body: PriorityIn,
    services: ServicesDep,
    _user: Annotated[Principal, permit(Action.PRIORITY_WRITE)],
) -> StudyPublic:
    """Set the radiologist's priority (null clears it); the AI never lowers it."""
    level = None if body.priority is None else Priority[body.priority.upper()]
    review.set_priority(services.db, study_uid, level)
    return _study(services, study_uid)


@router.get(
    "/studies/{study_uid}/findings/{finding_id}/heatmap.png",
    response_class=Response,
    responses=_NOT_FOUND | {200: {"content": {"image/png": {}}}},
    dependencies=[audited(AuditEvent.HEATMAP_VIEWED)],
)
def heatmap(
    study_uid: str,
    finding_id: str,
    services: ServicesDep,
    _user: Annotated[Principal, permit(Action.IMAGES_READ)],
) -> Response:
    """The finding's heatmap as RGBA PNG, to be stretched over its whole image."""
    get_study(services.db, study_uid)  # 404 for an unknown study before touching files
    png = heatmap_png(services.settings.storage_dir, study_uid, finding_id, services.db.keys)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})


def _export_signed_report(services: ServicesDep, study_uid: str) -> None:
    client = services.push_client
    push = None if client is None else signed_report_pusher(client)
    signed.export_signed_report(
        services.db, services.settings.storage_dir, study_uid, services.settings.site_name, push
    )


def _study(services: ServicesDep, study_uid: str) -> StudyPublic:
    entry = get_study(services.db, study_uid, services.rules)
    report = entry.report
    drafted = study_draft(services.db, services.settings.storage_dir, study_uid)
    return StudyPublic(
        **WorklistItemPublic.of(entry).model_dump(),
        **StudyPublic.drafted(drafted),
        findings=entry.result,
        reviews={
            fid: ReviewPublic.of(row) for fid, row in latest_reviews(services.db, study_uid).items()
        },
        report=ReportPublic(
            text=report.text,
            updated_at=report.updated_at,
            updated_by=report.updated_by,
            signed_at=report.signed_at,
            signed_by=report.signed_by,
        ),
        series=[SeriesPublic.of(s) for s in list_series(services.db, study_uid)],
        adjudications={
            fid: AdjudicationPublic.of(a)
            for fid, a in study_adjudications(
                services.db, study_uid, feedback_policy(services)
            ).items()
        },
    )
