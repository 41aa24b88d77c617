"""Access control on every route: ``permit(action)`` is the dependency a route declares to
get the logged-in :class:`Principal`, answered 401 without a session and 403 when the
account's role may not do ``action`` (``privacy.roles.PERMISSIONS``, the one table).

    @router.get("/worklist")
    def worklist(user: Annotated[Principal, permit(Action.WORKLIST_READ)]) -> ...

The role is checked before the route looks anything up, so a role that may not see an
object gets the same 403 whether the object exists or not. Rules that depend on the object
(whose draft a report is, whose session) are applied where the object is read, in the
store, from ``privacy.roles``. ``tests/server/test_authz_matrix.py`` holds every route to
an expected answer for each role.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends

from radlens.errors import ForbiddenError
from radlens.privacy.roles import Action, Principal, allowed
from radlens.server.deps import current_user

PERMIT_MARKER = "radlens_permitted_action"
"""The attribute that marks a permission dependency (read by the route tests)."""


def permit(action: Action) -> Any:
    """A dependency giving the logged-in principal when its role may do ``action``.

    Raises (through FastAPI):
        AuthError: not logged in (401).
        ForbiddenError: the role may not (403).
    """

    async def check(principal: Annotated[Principal, Depends(current_user)]) -> Principal:
        if not allowed(principal.role, action):
            raise ForbiddenError(f"the {principal.role.value} role may not {action.value}")
        return principal

    setattr(check, PERMIT_MARKER, action)
    return Depends(check)


def permitted_action(call: Callable[..., Any] | None) -> Action | None:
    """The action of a permission dependency's function (None for any other function)."""
    return getattr(call, PERMIT_MARKER, None)
