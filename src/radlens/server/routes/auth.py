"""Log in and out: ``POST /api/auth/login``, ``POST /api/auth/logout``, ``GET /api/auth/me``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from radlens.privacy.audit import AuditEvent
from radlens.server.audit import AuditScope, audited
from radlens.server.deps import SESSION_COOKIE, ServicesDep, UserDep
from radlens.server.schemas import LoginIn, Me
from radlens.store.accounts import login, logout

router = APIRouter(prefix="/api/auth", tags=["accounts"])


@router.post(
    "/login", response_model=Me, responses={401: {"description": "wrong name or password"}}
)
async def log_in(
    audit: Annotated[AuditScope, audited(AuditEvent.LOGIN)],
    body: LoginIn,
    request: Request,
    response: Response,
    services: ServicesDep,
) -> Me:
    """Open a session: an HttpOnly, SameSite=Strict cookie."""
    audit.user_id = body.username  # recorded for a failed login too
    hours = services.settings.session_hours
    # scrypt takes tens of milliseconds: keep it off the event loop.
    token = await run_in_threadpool(login, services.db, body.username, body.password, hours)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(hours * 3600),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return Me(username=body.username)


@router.post("/logout", status_code=204, dependencies=[audited(AuditEvent.LOGOUT)])
async def log_out(request: Request, services: ServicesDep) -> Response:
    """End the session (also when it already expired)."""
    await run_in_threadpool(logout, services.db, request.cookies.get(SESSION_COOKIE, ""))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", response_model=Me, responses={401: {"description": "not logged in"}})
def me(username: UserDep) -> Me:
    """Who is logged in."""
    return Me(username=username)
