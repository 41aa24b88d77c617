"""``Annotated`` dependency aliases: what a route may ask for."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from radlens.config import Settings
from radlens.errors import AuthError
from radlens.net.dicomweb import DicomWebClient
from radlens.net.scp import StorageSCP
from radlens.privacy.audit import AuditTrail, audit_trail
from radlens.privacy.roles import Principal
from radlens.server.oidc import OidcLogin
from radlens.store.accounts import authenticate, session_user
from radlens.store.db import Database
from radlens.store.intake import Intake
from radlens.store.logins import LoginLimits
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
    oidc: OidcLogin | None = field(init=False)  # when an identity provider is configured

    def __post_init__(self) -> None:
        s = self.settings
        self.audit = audit_trail(self.db, s.audit_site_id, s.audit_syslog, s.audit_syslog_protocol)
        self.oidc = OidcLogin(s) if s.oidc_issuer else None


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def current_user(request: Request, services: ServicesDep) -> Principal:
    """The logged-in account (name and role) of the request's session cookie.

    Raises:
        AuthError: no session, an expired one or one idle too long (answered 401 by
            ``server/errors.py``).
    """
    token = request.cookies.get(SESSION_COOKIE, "")
    basic = _basic_credentials(request) if not token else None
    if basic is not None:
        # DICOMweb and FHIR clients (a modality, a PACS, a FHIR server) send HTTP Basic
        # (RFC 7617) with each request; no session is opened for them.
        principal = await run_in_threadpool(
            authenticate,
            services.db,
            *basic,
            request.client.host if request.client else "",
            login_limits(services.settings),
        )
    else:
        idle = services.settings.session_idle_minutes
        principal = await run_in_threadpool(session_user, services.db, token, idle)
    request.state.username = principal.username  # for the audit record (server/audit.py)
    return principal


def login_limits(settings: Settings) -> LoginLimits:
    """The login rate limits of the settings (``store.logins``)."""
    return LoginLimits(
        max_failures=settings.login_max_failures,
        max_failures_ip=settings.login_max_failures_ip,
        lockout_s=settings.login_lockout_s,
    )


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """(name, password) of an ``Authorization: Basic`` header on ``/dicomweb`` or ``/fhir``
    (the web UI's ``/api`` takes only its session cookie); None otherwise."""
    if not request.url.path.startswith(("/dicomweb/", "/fhir/")):
        return None
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise AuthError("malformed Basic credentials") from None
    if not sep:
        raise AuthError("malformed Basic credentials")
    return name, password


UserDep = Annotated[Principal, Depends(current_user)]
"""Any logged-in account; a route that touches data asks ``server.authz.permit`` instead."""
