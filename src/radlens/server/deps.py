"""``Annotated`` dependency aliases: what a route may ask for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from radlens.config import Settings
from radlens.net.dicomweb import DicomWebClient
from radlens.net.scp import StorageSCP
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
    return await run_in_threadpool(session_user, services.db, token)


UserDep = Annotated[str, Depends(current_user)]
