"""Account management for administrators (``/api/users``): list, create, set the role,
enable or disable, reset a password. Every route needs the admin role (403 otherwise);
every change is audited (``account-changed``). The account holder's own password is
``PUT /api/auth/password``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from fastapi.concurrency import run_in_threadpool

from radlens.privacy.audit import AuditEvent
from radlens.privacy.roles import Action, Principal
from radlens.server.audit import audited
from radlens.server.authz import permit
from radlens.server.deps import ServicesDep
from radlens.server.schemas import (
    AccountCreate,
    AccountPublic,
    ActiveIn,
    PasswordResetIn,
    RoleIn,
)
from radlens.store import accounts

router = APIRouter(prefix="/api/users", tags=["accounts"])
_Admin = Annotated[Principal, permit(Action.ACCOUNTS_MANAGE)]
_Name = Annotated[str, Path(max_length=64)]
_CHANGED = [audited(AuditEvent.ACCOUNT_CHANGED)]
_Responses = dict[int | str, dict[str, Any]]
_NOT_FOUND: _Responses = {404: {"description": "no such account"}}
_LAST_ADMIN: _Responses = {409: {"description": "it would leave no active admin"}}


def _public(account: accounts.Account) -> AccountPublic:
    return AccountPublic(**vars(account))


def _one(services: ServicesDep, username: str) -> AccountPublic:
    found = [a for a in accounts.list_users(services.db) if a.username == username]
    return _public(found[0])


@router.get("", response_model=list[AccountPublic])
def list_accounts(services: ServicesDep, _admin: _Admin) -> list[AccountPublic]:
    """Every account with its role and state."""
    return [_public(a) for a in accounts.list_users(services.db)]


@router.post(
    "",
    response_model=AccountPublic,
    status_code=201,
    responses={409: {"description": "the name is taken"}},
    dependencies=_CHANGED,
)
async def create_account(
    body: AccountCreate, services: ServicesDep, _admin: _Admin
) -> AccountPublic:
    """Make an account with a role (its holder should change the password)."""
    await run_in_threadpool(accounts.add_user, services.db, body.username, body.password, body.role)
    return _one(services, body.username)


@router.put(
    "/{username}/role",
    response_model=AccountPublic,
    responses=_NOT_FOUND | _LAST_ADMIN,
    dependencies=_CHANGED,
)
def set_role(username: _Name, body: RoleIn, services: ServicesDep, _admin: _Admin) -> AccountPublic:
    """Give the account another role; its sessions end."""
    accounts.set_role(services.db, username, body.role)
    return _one(services, username)


@router.put(
    "/{username}/active",
    response_model=AccountPublic,
    responses=_NOT_FOUND | _LAST_ADMIN,
    dependencies=_CHANGED,
)
def set_active(
    username: _Name, body: ActiveIn, services: ServicesDep, _admin: _Admin
) -> AccountPublic:
    """Enable or disable the account (disabling ends its sessions; its work is kept)."""
    accounts.set_active(services.db, username, body.active)
    return _one(services, username)


@router.put(
    "/{username}/password",
    status_code=204,
    responses=_NOT_FOUND,
    dependencies=_CHANGED,
)
async def reset_password(
    username: _Name, body: PasswordResetIn, services: ServicesDep, _admin: _Admin
) -> Response:
    """Set a new password for the account (all its sessions end)."""
    await run_in_threadpool(accounts.set_password, services.db, username, body.password)
    return Response(status_code=204)
