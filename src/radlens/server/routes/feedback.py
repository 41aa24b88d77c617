"""Learning from readers (``/api/learning``, ``/api/monitoring``): the active-learning queue
and the monitoring of every model version per site and scanner (``radlens.feedback``).

The queue is a reading list (admins and radiologists); monitoring holds aggregates and the
station names of the site's scanners, no patient data (admins, radiologists and
technologists). Both are recorded in the audit trail as queries over the stored results.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from radlens.feedback.monitor import HISTOGRAM_EDGES
from radlens.feedback.views import FeedbackPolicy, monitoring, policy_of, queue
from radlens.privacy.audit import AuditEvent
from radlens.privacy.roles import Action, Principal
from radlens.server.audit import audited
from radlens.server.authz import permit
from radlens.server.deps import Services, ServicesDep
from radlens.server.schemas import MonitoringPublic, QueueItemPublic

router = APIRouter(prefix="/api", tags=["feedback"])
_Model = Annotated[str, Query(max_length=128, description="one model's name ('' = all)")]


def feedback_policy(services: Services) -> FeedbackPolicy:
    """The site's feedback policy from its settings."""
    s = services.settings
    return policy_of(s.adjudication_rule, s.senior_readers, s.drift_psi_alert, s.drift_min_images)


@router.get(
    "/learning/queue",
    response_model=list[QueueItemPublic],
    dependencies=[audited(AuditEvent.WORKLIST_VIEWED)],
)
async def learning_queue(
    services: ServicesDep,
    user: Annotated[Principal, permit(Action.LEARNING_QUEUE_READ)],
    model: _Model = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[QueueItemPublic]:
    """Open studies whose review would teach the models most (uncertain, out of
    distribution, disagreements), round-robin across scanners; the caller's own reviewed
    findings are left out."""
    items = await run_in_threadpool(
        queue,
        services.db,
        services.settings.storage_dir,
        user.username,
        feedback_policy(services),
        model,
        limit,
    )
    return [QueueItemPublic.of(item) for item in items]


@router.get(
    "/monitoring",
    response_model=MonitoringPublic,
    dependencies=[audited(AuditEvent.WORKLIST_VIEWED)],
)
async def monitoring_report(
    services: ServicesDep,
    _user: Annotated[Principal, permit(Action.MONITORING_READ)],
    model: _Model = "",
    since: Annotated[datetime | None, Query(description="studies analyzed since (UTC)")] = None,
) -> MonitoringPublic:
    """Per model version, and per site/scanner: volume, positive rate, reader agreement,
    calibration on reviewed cases, OOD scores against the training set, drift alerts."""
    s = services.settings
    report = await run_in_threadpool(
        monitoring,
        services.db,
        s.storage_dir,
        s.card_folders,
        feedback_policy(services),
        model,
        _utc(since),
    )
    return MonitoringPublic.of(report, HISTOGRAM_EDGES)


def _utc(when: datetime | None) -> datetime | None:
    """A time as the store keeps it: UTC without an offset (naive input is taken as UTC)."""
    if when is None or when.tzinfo is None:
        return when
    return when.astimezone(UTC).replace(tzinfo=None)
