"""The audit dependency: each route that reads or changes patient data declares its event,
and the record is written whatever the outcome (``privacy.audit``).

    @router.get("/studies/{study_uid}", dependencies=[audited(AuditEvent.STUDY_VIEWED)])

A route-level dependency is solved before the route's own parameters, so a request that
fails its login (401), names an unknown study (404) or breaks a rule (409) is recorded too,
with EventOutcomeIndicator 4 (5xx: 8) and the HTTP status in EventOutcomeDescription.
The study comes from the path (``study_uid`` or ``study``) or the ``study`` query parameter;
a route that learns more (the login name) sets it on the :class:`AuditScope` it asks for.
``tests/server/test_audit_api.py`` fails when a patient-data route has no audit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from radlens.errors import AuthError, RadlensError
from radlens.privacy.audit import AuditEvent, EventOutcome
from radlens.server import errors
from radlens.server.deps import SESSION_COOKIE, ServicesDep
from radlens.store.accounts import session_user

AUDIT_MARKER = "radlens_audit_event"
"""The attribute that marks an audit dependency (read by the route-coverage test)."""

_URI_EVENTS = frozenset(
    {
        AuditEvent.WORKLIST_VIEWED,
        AuditEvent.INSTANCES_QUERIED,
        AuditEvent.FHIR_QUERIED,
        AuditEvent.FHIR_READ,
        AuditEvent.IMPORTED,
    }
)


@dataclass
class AuditScope:
    """What the record of one request will say; a route may fill in what it learns."""

    event: AuditEvent
    study_uid: str | None = None
    user_id: str = ""


def audited(event: AuditEvent) -> Any:
    """A dependency that writes one audit record for each request of the route.

    Use it in ``dependencies=[...]``, or as ``scope: Annotated[AuditScope, audited(...)]``
    placed first among the parameters when the route sets fields on the scope.
    """

    async def record(request: Request, services: ServicesDep) -> AsyncIterator[AuditScope]:
        scope = AuditScope(event, study_uid=_study_of(request))
        if event is AuditEvent.LOGOUT:  # the session is gone once the route has run
            scope.user_id = await run_in_threadpool(_session_user, services, request)
        status = 200
        try:
            yield scope
        except BaseException as exc:
            status = _status(exc)
            raise
        finally:
            user = scope.user_id or getattr(request.state, "username", "")
            if not user and event is not AuditEvent.LOGIN:
                user = await run_in_threadpool(_session_user, services, request)
            uri = request.url.path if event in _URI_EVENTS else None
            outcome = (
                EventOutcome.SUCCESS
                if status < 400
                else EventOutcome.MINOR_FAILURE
                if status < 500
                else EventOutcome.SERIOUS_FAILURE
            )
            await run_in_threadpool(
                services.audit.record,
                event,
                user_id=user,
                client_ip=request.client.host if request.client else "",
                outcome=outcome,
                study_uid=scope.study_uid,
                uri=uri,
                query=request.url.query if uri else "",
                description=f"HTTP {status}",
            )

    setattr(record, AUDIT_MARKER, event)
    return Depends(record)


def audit_event(call: Callable[..., Any] | None) -> AuditEvent | None:
    """The event of an audit dependency's function (None for any other function)."""
    return getattr(call, AUDIT_MARKER, None)


def _study_of(request: Request) -> str | None:
    uid = request.path_params.get("study_uid") or request.path_params.get("study")
    if not uid:
        uid = request.query_params.get("study", "").removeprefix("urn:oid:")
    return str(uid)[:64] or None


def _status(exc: BaseException) -> int:
    if isinstance(exc, RadlensError):
        return errors.status_for(exc)
    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, RequestValidationError):
        return 422
    return 500


def _session_user(services: ServicesDep, request: Request) -> str:
    """Who the session cookie belongs to, or '' (logout, failed logins, senders)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return ""
    try:
        return session_user(services.db, token, services.settings.session_idle_minutes).username
    except AuthError:
        return ""
