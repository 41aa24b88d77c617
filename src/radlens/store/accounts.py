"""Accounts, roles and logins: argon2id password hashes, server-side sessions.

Only hashes are stored: a password as an argon2id PHC string (``argon2-cffi``, RFC 9106
parameters; accounts made before migration 0006 keep their ``scrypt$n$r$p$salt$hash`` until
their next login, which rehashes them), a session token as its sha256, so a copy of the
database opens no account. A session is a random 256-bit token (``secrets``) in an
HttpOnly cookie, kept server-side so that logging out, disabling an account or changing its
password ends it at once; it ends after ``hours`` in all and after ``idle_minutes``
without use (automatic logoff, HIPAA §164.312(a)(2)(iii)). Failed logins are rate limited
per name and per client address (``store.logins``).

Each account has one role (``privacy.roles.Role``); at least one active admin is kept. No
account exists until one is made (``radlens users add``). In the embedded default, the
first start makes ``admin`` (role admin) with a random password written to a file only its
owner can read (:func:`ensure_first_account`); production mode (``Settings.production``)
never creates one and refuses to start without an active admin, so there is no default
password anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from radlens.errors import AuthError, ConfigError, ConflictError, NotFoundError
from radlens.privacy.roles import Principal, Role
from radlens.store import logins
from radlens.store.db import Database
from radlens.store.logins import LoginLimits
from radlens.store.models import SessionRow, UserRow, utcnow

log = logging.getLogger(__name__)

FIRST_ACCOUNT = "admin"
FIRST_PASSWORD_FILE = "initial-admin-password"
MIN_PASSWORD_CHARS = 10
IDLE_MINUTES = 15.0
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_HASHER = PasswordHasher()  # argon2id, RFC 9106 "low memory" profile (t=3, 64 MiB, p=4)
# Checked against when the name is unknown or has no password, so it costs the same time.
_DUMMY_HASH = ""
# A session's last use is written at most this often (one write per request is waste).
_TOUCH = timedelta(seconds=60)


@dataclass(frozen=True)
class Account:
    """An account as listed: its name, role, whether it may log in, and whether it was
    made by an OIDC login (no password)."""

    username: str
    role: Role
    active: bool
    sso: bool = False


@dataclass(frozen=True)
class SessionInfo:
    """One open session of an account (never its token)."""

    id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    current: bool


def hash_password(password: str) -> str:
    """A salted argon2id hash of ``password``, as a PHC string with its parameters.

    Example:
        >>> hash_password("correct horse battery").startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        True
    """
    return _HASHER.hash(password)


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the ``stored`` hash: argon2 (PHC string) or a
    ``scrypt$...`` hash from before migration 0006 (compared in constant time)."""
    if stored.startswith("$argon2"):
        try:
            return _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    return _verify_scrypt(password, stored)


def needs_rehash(stored: str) -> bool:
    """True for a hash that is not argon2id with today's parameters (rehash at login)."""
    if not stored.startswith("$argon2id$"):
        return True
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def add_user(
    db: Database, username: str, password: str, role: Role | str = Role.RADIOLOGIST
) -> None:
    """Make an account.

    Raises:
        ConfigError: the name is not 1-64 of ``A-Z a-z 0-9 . _ @ -``, the password is
            shorter than 10 characters, or the role is unknown.
        ConflictError: the name is taken.
    """
    role = _role(role)
    _check_new(username, password)
    with db.sessions.begin() as session:
        if session.get(UserRow, username) is not None:
            raise ConflictError(f"account {username!r} exists")
        session.add(
            UserRow(username=username, password_hash=hash_password(password), role=role.value)
        )


def set_password(db: Database, username: str, password: str, keep_token: str = "") -> None:
    """Change a password; every session of the account ends (but ``keep_token``'s, the
    session of an account holder changing their own).

    Raises:
        NotFoundError: no such account.
    """
    _check_new(username, password)
    with db.sessions.begin() as session:
        user = session.get(UserRow, username)
        if user is None:
            raise NotFoundError(f"no account {username!r}")
        user.password_hash = hash_password(password)
        session.execute(
            delete(SessionRow).where(
                SessionRow.username == username, SessionRow.token_sha256 != _token_hash(keep_token)
            )
        )


def change_own_password(
    db: Database,
    username: str,
    current: str,
    new: str,
    token: str,
    client_ip: str = "",
    limits: LoginLimits | None = None,
) -> None:
    """An account holder changes their own password, proving the current one (rate limited
    like a login); their other sessions end, ``token``'s stays.

    Raises:
        AuthError: the current password is wrong.
        TooManyRequestsError: too many wrong passwords.
        ConfigError: the new password is too short.
    """
    _verify_login(db, username, current, client_ip, limits or LoginLimits())
    set_password(db, username, new, keep_token=token)


def set_active(db: Database, username: str, active: bool) -> None:
    """Enable or disable an account; disabling ends its sessions.

    Raises:
        NotFoundError: no such account.
        ConflictError: disabling the last active admin.
    """
    with db.sessions.begin() as session:
        user = _user(session, username)
        if not active and user.role == Role.ADMIN:
            _keep_an_admin(session, username)
        user.active = active
        if not active:
            session.execute(delete(SessionRow).where(SessionRow.username == username))


def set_role(db: Database, username: str, role: Role | str) -> None:
    """Give an account another role; its sessions end, so the new role holds at once for
    everything it opens next.

    Raises:
        NotFoundError: no such account.
        ConfigError: an unknown role.
        ConflictError: taking the admin role from the last active admin.
    """
    role = _role(role)
    with db.sessions.begin() as session:
        user = _user(session, username)
        if user.role == Role.ADMIN and role is not Role.ADMIN:
            _keep_an_admin(session, username)
        if user.role != role:
            user.role = role.value
            session.execute(delete(SessionRow).where(SessionRow.username == username))


def list_users(db: Database) -> list[Account]:
    """Every account, by name."""
    with db.sessions() as session:
        rows = session.scalars(select(UserRow).order_by(UserRow.username))
        return [
            Account(u.username, _role(u.role), bool(u.active), u.oidc_subject is not None)
            for u in rows
        ]


def login(
    db: Database,
    username: str,
    password: str,
    hours: float,
    client_ip: str = "",
    limits: LoginLimits | None = None,
) -> str:
    """Check the password and open a session; return its token (for the cookie).

    A hash from before migration 0006 (scrypt), or one made with older argon2 parameters,
    is replaced by a new argon2id hash of the same password.

    Raises:
        AuthError: unknown name, wrong password, disabled or password-less (OIDC) account
            (never says which).
        TooManyRequestsError: too many failed logins for the name or from the address.
    """
    _verify_login(db, username, password, client_ip, limits or LoginLimits())
    return open_session(db, username, hours)


def authenticate(
    db: Database,
    username: str,
    password: str,
    client_ip: str = "",
    limits: LoginLimits | None = None,
) -> Principal:
    """Check a name and password without opening a session (HTTP Basic of DICOMweb and
    FHIR clients); rate limited and rehashed like :func:`login`.

    Raises:
        AuthError: as :func:`login`.
        TooManyRequestsError: as :func:`login`.
    """
    _verify_login(db, username, password, client_ip, limits or LoginLimits())
    with db.sessions() as session:
        user = session.get(UserRow, username)
        assert user is not None  # just verified
        return Principal(user.username, _role(user.role))


def open_session(db: Database, username: str, hours: float) -> str:
    """Open a session for an account whose holder was authenticated (password or OIDC)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with db.sessions.begin() as session:
        session.execute(delete(SessionRow).where(SessionRow.expires_at < now))
        session.add(
            SessionRow(
                token_sha256=_token_hash(token),
                username=username,
                created_at=now,
                expires_at=now + timedelta(hours=hours),
                last_seen_at=now,
            )
        )
    return token


def session_user(db: Database, token: str, idle_minutes: float = IDLE_MINUTES) -> Principal:
    """The account (name and role) a session token belongs to; marks the session used.

    Raises:
        AuthError: no token, an unknown or expired one, one unused for ``idle_minutes``
            (the session ends), or a disabled account.
    """
    if not token:
        raise AuthError("not logged in")
    now = utcnow()
    key = _token_hash(token)
    with db.sessions() as session:
        row = session.get(SessionRow, key)
        if row is None or row.expires_at < now:
            raise AuthError("session expired or unknown; log in again")
        idle = row.last_seen_at + timedelta(minutes=idle_minutes) < now
        user = session.get(UserRow, row.username)
        if user is None or not user.active:
            raise AuthError("account disabled")
        principal = Principal(user.username, _role(user.role))
        touch = now - row.last_seen_at > min(_TOUCH, timedelta(minutes=idle_minutes / 4))
    if idle:
        logout(db, token)
        raise AuthError(f"logged off after {idle_minutes:g} minutes without use; log in again")
    if touch:
        with db.sessions.begin() as session:
            row = session.get(SessionRow, key)
            if row is not None:
                row.last_seen_at = now
    return principal


def logout(db: Database, token: str) -> None:
    """End the session of ``token`` (nothing happens for an unknown one)."""
    if token:
        with db.sessions.begin() as session:
            session.execute(delete(SessionRow).where(SessionRow.token_sha256 == _token_hash(token)))


def list_sessions(db: Database, username: str, token: str = "") -> list[SessionInfo]:
    """The open sessions of one account, newest first; ``token``'s is marked current."""
    current = _token_hash(token) if token else ""
    now = utcnow()
    with db.sessions() as session:
        rows = session.scalars(
            select(SessionRow)
            .where(SessionRow.username == username, SessionRow.expires_at >= now)
            .order_by(SessionRow.created_at.desc())
        )
        return [
            SessionInfo(
                _session_id(r.token_sha256),
                r.created_at,
                r.last_seen_at,
                r.expires_at,
                r.token_sha256 == current,
            )
            for r in rows
        ]


def end_session(db: Database, username: str, session_id: str) -> None:
    """End one of the account's own sessions by its listed id.

    Raises:
        NotFoundError: no session of this account has that id (another account's session
            is not found either: its existence is not told).
    """
    with db.sessions.begin() as session:
        rows = session.scalars(select(SessionRow).where(SessionRow.username == username))
        found = [r for r in rows if hmac.compare_digest(_session_id(r.token_sha256), session_id)]
        if not found:
            raise NotFoundError("no such session")
        for row in found:
            session.delete(row)


def oidc_account(db: Database, subject: str, username: str, role: Role | str) -> str:
    """The account of an identity provider's user (``subject`` = ``iss|sub``), made on its
    first login, its role set from the provider's claims at each login. Returns its name.

    Raises:
        ConfigError: a name that is not a valid account name.
        ConflictError: the name belongs to a local (password) account or to another
            subject: an identity provider never takes over an account it did not make.
        AuthError: the account was disabled in radlens.
    """
    role = _role(role)
    if not _USERNAME.match(username):
        raise ConfigError("the identity provider's user name is not a valid account name")
    with db.sessions.begin() as session:
        user = session.scalar(select(UserRow).where(UserRow.oidc_subject == subject))
        if user is None:
            if session.get(UserRow, username) is not None:
                raise ConflictError(
                    f"account {username!r} exists and was not made by this identity provider"
                )
            user = UserRow(username=username, password_hash="", role=role, oidc_subject=subject)
            session.add(user)
        elif not user.active:
            raise AuthError("account disabled")
        elif user.role != role:
            if user.role == Role.ADMIN:
                _keep_an_admin(session, user.username)
            user.role = role.value
        return user.username


def ensure_first_account(db: Database, home: Path, production: bool) -> Path | None:
    """In the embedded default, make ``admin`` (role admin) when there is no account at all.

    The random password goes to ``<home>/initial-admin-password`` (mode 0600), never to a
    log. Returns that file when it was written; None when accounts exist.

    Raises:
        ConfigError: ``production`` and no active admin account: production never makes an
            account, and a service nobody can administer does not start.
    """
    with db.sessions() as session:
        accounts = session.scalar(select(func.count()).select_from(UserRow))
        admins = session.scalar(
            select(func.count())
            .select_from(UserRow)
            .where(UserRow.role == Role.ADMIN.value, UserRow.active.is_(True))
        )
    if production:
        if not admins:
            raise ConfigError(
                "production mode needs an active admin account and makes none: create one "
                "with `radlens users add NAME --role admin` (same --home/--db), then start again"
            )
        return None
    if accounts:
        return None
    password = secrets.token_urlsafe(18)
    path = home.expanduser() / FIRST_PASSWORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # A new owner-only file, renamed over any old one only once the account exists: a
    # left-over world-readable file never receives the password, and a process that lost
    # the race to make the account leaves the winner's file alone.
    partial = path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fp:
        fp.write(password + "\n")
        fp.flush()
        os.fsync(fp.fileno())
    try:
        add_user(db, FIRST_ACCOUNT, password, Role.ADMIN)
    except ConflictError:
        partial.unlink()
        return None  # another process made it first
    except BaseException:
        partial.unlink()
        raise
    partial.replace(path)
    log.warning(
        "made account %r (admin); its password is in %s (change it: radlens users passwd %s)",
        FIRST_ACCOUNT,
        path,
        FIRST_ACCOUNT,
    )
    return path


def _verify_login(
    db: Database, username: str, password: str, client_ip: str, limits: LoginLimits
) -> None:
    logins.check(db, username, client_ip)
    with db.sessions() as session:
        user = session.get(UserRow, username) if _USERNAME.match(username) else None
        stored = user.password_hash if user is not None else ""
        active = user is not None and user.active
    # An unknown name, or an account without a password, costs one argon2 check too.
    matches = verify_password(password, stored or _dummy_hash()) and bool(stored)
    if not matches or not active:
        logins.failed(db, username, client_ip, limits)
        log.info("failed login")
        raise AuthError("wrong user name or password")
    logins.succeeded(db, username)
    if needs_rehash(stored):
        new_hash = hash_password(password)
        with db.sessions.begin() as session:
            row = session.get(UserRow, username)
            if row is not None and row.password_hash == stored:  # not changed meanwhile
                row.password_hash = new_hash


def _user(session: Session, username: str) -> UserRow:
    user = session.get(UserRow, username, with_for_update=True)
    if user is None:
        raise NotFoundError(f"no account {username!r}")
    return user


def _keep_an_admin(session: Session, leaving: str) -> None:
    others = session.scalar(
        select(func.count())
        .select_from(UserRow)
        .where(
            UserRow.role == Role.ADMIN.value,
            UserRow.active.is_(True),
            UserRow.username != leaving,
        )
    )
    if not others:
        raise ConflictError(f"{leaving!r} is the last active admin; make another admin first")


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise ConfigError(f"unknown role {role!r}; choose one of {choices}") from None


def _check_new(username: str, password: str) -> None:
    if not _USERNAME.match(username):
        raise ConfigError(
            "an account name is 1-64 characters of A-Z a-z 0-9 . _ @ -, starting with a "
            "letter or digit"
        )
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if not _DUMMY_HASH:
        _DUMMY_HASH = hash_password(secrets.token_hex(16))
    return _DUMMY_HASH


def _verify_scrypt(password: str, stored: str) -> bool:
    """A ``scrypt$n$r$p$salt$hash`` (``hashlib.scrypt``, RFC 7914) from before 0006."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode("utf-8"),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 1024 * 1024,
            dklen=32,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, _unb64(digest))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _session_id(token_sha256: str) -> str:
    """The id a session is listed and ended by: not its key, so a listing that leaks opens
    nothing and names no row directly."""
    return hashlib.sha256(f"session-id:{token_sha256}".encode("ascii")).hexdigest()[:20]


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
