"""Login rate limiting: failed logins counted per account name and per client address.

After ``max_failures`` failures of one name (or ``max_failures_ip`` from one address)
within ``window_s``, logins for it are refused with :class:`TooManyRequestsError` (HTTP 429
with Retry-After) for ``lockout_s``; each further failure once locked doubles the wait, up
to ``max_lockout_s``. A refused attempt does not check the password (so it tells an
attacker nothing) and does not count. A successful login clears its name's count, never
the address's: one valid account must not reset an address's guessing budget.

The counts live in the database (``login_failures``), so they hold across worker processes
and restarts. Rows are keyed by ``sha256("user:" + name.casefold())`` or ``"ip:" + address``:
the table keeps neither the names tried nor the addresses in clear. A name's lockout can be
caused by anyone who knows the name (the usual price of per-account limits, OWASP); the
lockout is short and grows only with more failures, and the address limit still stops
one client from guessing many names.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete

from radlens.errors import TooManyRequestsError
from radlens.store.db import Database
from radlens.store.models import LoginFailureRow, utcnow


@dataclass(frozen=True)
class LoginLimits:
    """How many failures lock a name or an address, and for how long."""

    max_failures: int = 5
    max_failures_ip: int = 20
    window_s: float = 900.0
    lockout_s: float = 30.0
    max_lockout_s: float = 900.0


def _keys(username: str, client_ip: str) -> list[tuple[str, str]]:
    keys = [("user", username.casefold())]
    if client_ip:
        keys.append(("ip", client_ip))
    return keys


def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode("utf-8", "surrogateescape")).hexdigest()


def check(db: Database, username: str, client_ip: str) -> None:
    """Refuse a login attempt while its name or its address is locked.

    Raises:
        TooManyRequestsError: locked; ``retry_after_s`` says for how much longer.
    """
    now = utcnow()
    with db.sessions() as session:
        waits = [
            row.locked_until - now
            for kind, value in _keys(username, client_ip)
            if (row := session.get(LoginFailureRow, _key(kind, value))) is not None
            and row.locked_until is not None
            and row.locked_until > now
        ]
    if waits:
        retry = max(1, math.ceil(max(waits).total_seconds()))
        raise TooManyRequestsError(f"too many failed logins; try again in {retry} s", retry)


def failed(db: Database, username: str, client_ip: str, limits: LoginLimits) -> None:
    """Count one failed login for the name and the address; lock them at the limit."""
    now = utcnow()
    with db.sessions.begin() as session:
        for kind, value in _keys(username, client_ip):
            key = _key(kind, value)
            row = session.get(LoginFailureRow, key, with_for_update=True)
            if row is None:
                row = LoginFailureRow(key_sha256=key, failures=0, first_at=now)
                session.add(row)
            elif _forgotten(row, now, limits):
                row.failures, row.first_at, row.locked_until = 0, now, None
            row.failures += 1
            limit = limits.max_failures if kind == "user" else limits.max_failures_ip
            if row.failures >= limit:
                wait = min(limits.lockout_s * 2 ** (row.failures - limit), limits.max_lockout_s)
                row.locked_until = now + timedelta(seconds=wait)


def succeeded(db: Database, username: str) -> None:
    """A successful login clears the name's failures (not the address's)."""
    with db.sessions.begin() as session:
        session.execute(
            delete(LoginFailureRow).where(
                LoginFailureRow.key_sha256 == _key("user", username.casefold())
            )
        )


def _forgotten(row: LoginFailureRow, now: datetime, limits: LoginLimits) -> bool:
    """Old failures are forgotten once the window has passed and no lockout runs."""
    locked = row.locked_until is not None and row.locked_until > now
    return not locked and row.first_at < now - timedelta(seconds=limits.window_s)
