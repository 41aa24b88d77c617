"""``Annotated`` dependency aliases: what a route may ask for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from radlens.config import Settings
from radlens.net.dicomweb import DicomWebClient
from radlens.net.scp import StorageSCP
from radlens.privacy.audit import AuditTrail, audit_trail
from radlens.store.accounts import session_user
from radlens.store.db import Database
from radlens.store.intake import Intake
from radlens.triage.priority import TriageRules

SESSION_COOKIE = "radlens_session"


@dataclass
class Services:
    """What the lifespan started; one per app."""

    settings: Settings
    db: Database
    intake: Intake
    models_loaded: int
    scp: StorageSCP | None = None
    rules: TriageRules = field(default_factory=TriageRules)
    push_client: DicomWebClient | None = None  # results go back to the PACS through it
    audit: AuditTrail = field(init=False)  # every PHI route records through it

    def __post_init__(self) -> None:
        s = self.settings
        self.audit = audit_trail(self.db, s.audit_site_id, s.audit_syslog, s.audit_syslog_protocol)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def current_user(request: Request, services: ServicesDep) -> str:
    """The logged-in account of the request's session cookie.

    Raises:
        AuthError: no session, or an expired one (answered 401 by ``server/errors.py``).
    """
    token = request.cookies.get(SESSION_COOKIE, "")
    username = await run_in_threadpool(session_user, services.db, token)
    request.state.username = username  # for the audit record (server/audit.py)
    return username


UserDep = Annotated[str, Depends(current_user)]
