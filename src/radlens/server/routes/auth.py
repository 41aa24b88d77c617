"""Accounts' own routes: log in and out (password or OIDC), who am I, my sessions, my
password (``/api/auth/...``). Administrators manage other accounts under ``/api/users``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from radlens.errors import AuthError, NotFoundError
from radlens.privacy.audit import AuditEvent
from radlens.server.audit import AuditScope, audited
from radlens.server.deps import SESSION_COOKIE, Services, ServicesDep, UserDep, login_limits
from radlens.server.oidc import OidcLogin
from radlens.server.schemas import LoginIn, Me, PasswordChangeIn, Providers, SessionPublic
from radlens.store import accounts

router = APIRouter(prefix="/api/auth", tags=["accounts"])
_LOGIN_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "wrong name or password"},
    429: {"description": "too many failed logins (Retry-After says when to try again)"},
}


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def _set_session_cookie(response: Response, request: Request, token: str, hours: float) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(hours * 3600),
        httponly=True,
        # Strict also after the OIDC redirect: the page it lands on is not sent the cookie,
        # but every fetch the web UI then makes (same site) is.
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


@router.post("/login", response_model=Me, responses=_LOGIN_ERRORS)
async def log_in(
    audit: Annotated[AuditScope, audited(AuditEvent.LOGIN)],
    body: LoginIn,
    request: Request,
    response: Response,
    services: ServicesDep,
) -> Me:
    """Open a session: an HttpOnly, SameSite=Strict cookie. Failures are rate limited per
    name and per client address (429 with Retry-After)."""
    audit.user_id = body.username  # recorded for a failed login too
    hours = services.settings.session_hours
    # argon2 takes tens of milliseconds: keep it off the event loop.
    token = await run_in_threadpool(
        accounts.login,
        services.db,
        body.username,
        body.password,
        hours,
        _client_ip(request),
        login_limits(services.settings),
    )
    _set_session_cookie(response, request, token, hours)
    idle = services.settings.session_idle_minutes
    principal = await run_in_threadpool(accounts.session_user, services.db, token, idle)
    return Me(username=principal.username, role=principal.role)


@router.post("/logout", status_code=204, dependencies=[audited(AuditEvent.LOGOUT)])
async def log_out(request: Request, services: ServicesDep) -> Response:
    """End the session (also when it already expired)."""
    await run_in_threadpool(accounts.logout, services.db, request.cookies.get(SESSION_COOKIE, ""))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", response_model=Me, responses={401: {"description": "not logged in"}})
def me(user: UserDep) -> Me:
    """Who is logged in, and in which role."""
    return Me(username=user.username, role=user.role)


@router.get("/providers", response_model=Providers)
def providers(services: ServicesDep) -> Providers:
    """How one may log in here (the login page asks before showing its buttons)."""
    oidc = bool(services.settings.oidc_issuer)
    return Providers(oidc=oidc, oidc_login_url=f"{router.prefix}/oidc/login" if oidc else None)


@router.get("/sessions", response_model=list[SessionPublic])
def my_sessions(request: Request, services: ServicesDep, user: UserDep) -> list[SessionPublic]:
    """The caller's own open sessions (never anyone else's)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    found = accounts.list_sessions(services.db, user.username, token)
    return [SessionPublic(**vars(s)) for s in found]


@router.delete(
    "/sessions/{session_id}",
    status_code=204,
    responses={404: {"description": "no session of yours has that id"}},
    dependencies=[audited(AuditEvent.LOGOUT)],
)
def end_my_session(session_id: str, services: ServicesDep, user: UserDep) -> Response:
    """End one of the caller's own sessions (another account's is 'not found')."""
    accounts.end_session(services.db, user.username, session_id)
    return Response(status_code=204)


@router.put(
    "/password",
    status_code=204,
    responses=_LOGIN_ERRORS,
    dependencies=[audited(AuditEvent.ACCOUNT_CHANGED)],
)
async def change_my_password(
    body: PasswordChangeIn, request: Request, services: ServicesDep, user: UserDep
) -> Response:
    """Change one's own password (the current one as proof); other sessions end."""
    await run_in_threadpool(
        accounts.change_own_password,
        services.db,
        user.username,
        body.current_password,
        body.new_password,
        request.cookies.get(SESSION_COOKIE, ""),
        _client_ip(request),
        login_limits(services.settings),
    )
    return Response(status_code=204)


def _oidc(services: Services) -> OidcLogin:
    if services.oidc is None:
        raise NotFoundError("OIDC login is not configured (oidc_issuer)")
    return services.oidc


@router.get(
    "/oidc/login",
    response_class=RedirectResponse,
    status_code=302,
    responses={404: {"description": "OIDC is not configured"}},
)
async def oidc_login(request: Request, services: ServicesDep) -> RedirectResponse:
    """Start an OIDC login: to the identity provider (authorization code + PKCE)."""
    oidc = _oidc(services)
    redirect_uri = services.settings.oidc_redirect_url or str(request.url_for("oidc_callback"))
    url = await run_in_threadpool(oidc.start, services.db, redirect_uri)
    return RedirectResponse(url, status_code=302)


@router.get(
    "/oidc/callback",
    response_class=RedirectResponse,
    status_code=303,
    responses={
        401: {"description": "the login failed a check"},
        403: {"description": "no radlens role"},
    },
)
async def oidc_callback(
    audit: Annotated[AuditScope, audited(AuditEvent.LOGIN)],
    request: Request,
    services: ServicesDep,
    state: str = "",
    code: str = "",
    error: str = "",
) -> RedirectResponse:
    """The identity provider's answer: check it, open a session, on to the worklist."""
    oidc = _oidc(services)
    if error or not state or not code:
        raise AuthError("the identity provider did not log the user in")
    identity = await run_in_threadpool(oidc.finish, services.db, state, code)
    audit.user_id = identity.username
    username = await run_in_threadpool(
        accounts.oidc_account, services.db, identity.subject, identity.username, identity.role
    )
    audit.user_id = username
    hours = services.settings.session_hours
    token = await run_in_threadpool(accounts.open_session, services.db, username, hours)
    response = RedirectResponse("/", status_code=303)
    _set_session_cookie(response, request, token, hours)
    return response
