"""Accounts and logins: scrypt password hashes, server-side sessions.

Only hashes are stored: a password as ``scrypt$n$r$p$salt$hash`` (``hashlib.scrypt``,
RFC 7914), a session token as its sha256, so a copy of the database opens no account.
A session is a random 256-bit token in an HttpOnly cookie; logging out or expiry deletes
its row. Roles and the audit trail come with the privacy work; every account can read
and report for now.

No account exists until one is made (``radlens users add``). In the embedded default, the
first start makes ``admin`` with a random password written to a file only its owner can
read (:func:`ensure_first_account`); production mode (``Settings.production``) never
creates one, so there is no default password anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, func, select

from radlens.errors import AuthError, ConfigError, ConflictError, NotFoundError
from radlens.store.db import Database
from radlens.store.models import SessionRow, UserRow, utcnow

log = logging.getLogger(__name__)

FIRST_ACCOUNT = "admin"
FIRST_PASSWORD_FILE = "initial-admin-password"
MIN_PASSWORD_CHARS = 10
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
# Checked against when the name is unknown, so a wrong name costs the same time.
_DUMMY_HASH = ""


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``, self-describing.

    Example:
        >>> hash_password("correct horse battery").startswith("scrypt$16384$8$1$")
        True
    """
    salt = os.urandom(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return "$".join(
        ("scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest))
    )


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the ``stored`` hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, _unb64(digest))


def add_user(db: Database, username: str, password: str) -> None:
    """Make an account.

    Raises:
        ConfigError: the name is not 1-64 of ``A-Z a-z 0-9 . _ @ -`` or the password
            is shorter than 10 characters.
        ConflictError: the name is taken.
    """
    _check_new(username, password)
    with db.sessions.begin() as session:
        if session.get(UserRow, username) is not None:
            raise ConflictError(f"account {username!r} exists")
        session.add(UserRow(username=username, password_hash=hash_password(password)))


def set_password(db: Database, username: str, password: str) -> None:
    """Change a password; every session of the account ends.

    Raises:
        NotFoundError: no such account.
    """
    _check_new(username, password)
    with db.sessions.begin() as session:
        user = session.get(UserRow, username)
        if user is None:
            raise NotFoundError(f"no account {username!r}")
        user.password_hash = hash_password(password)
        session.execute(delete(SessionRow).where(SessionRow.username == username))


def set_active(db: Database, username: str, active: bool) -> None:
    """Enable or disable an account; disabling ends its sessions.

    Raises:
        NotFoundError: no such account.
    """
    with db.sessions.begin() as session:
        user = session.get(UserRow, username)
        if user is None:
            raise NotFoundError(f"no account {username!r}")
        user.active = active
        if not active:
            session.execute(delete(SessionRow).where(SessionRow.username == username))


def list_users(db: Database) -> list[tuple[str, bool]]:
    """(name, active) of every account, by name."""
    with db.sessions() as session:
        rows = session.execute(select(UserRow.username, UserRow.active).order_by(UserRow.username))
        return [(name, bool(active)) for name, active in rows]


def login(db: Database, username: str, password: str, hours: float) -> str:
    """Check the password and open a session; return its token (for the cookie).

    Raises:
        AuthError: unknown name, wrong password or disabled account (never says which).
    """
    with db.sessions() as session:
        user = session.get(UserRow, username) if _USERNAME.match(username) else None
        stored = user.password_hash if user is not None else _dummy_hash()
        active = user is not None and user.active
    if not verify_password(password, stored) or not active:
        log.info("failed login")
        raise AuthError("wrong user name or password")
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
            )
        )
    return token


def session_user(db: Database, token: str) -> str:
    """The account a session token belongs to.

    Raises:
        AuthError: no token, an unknown or expired one, or a disabled account.
    """
    if not token:
        raise AuthError("not logged in")
    with db.sessions() as session:
        row = session.get(SessionRow, _token_hash(token))
        if row is None or row.expires_at < utcnow():
            raise AuthError("session expired or unknown; log in again")
        user = session.get(UserRow, row.username)
        if user is None or not user.active:
            raise AuthError("account disabled")
        return user.username


def logout(db: Database, token: str) -> None:
    """End the session of ``token`` (nothing happens for an unknown one)."""
    if token:
        with db.sessions.begin() as session:
            session.execute(delete(SessionRow).where(SessionRow.token_sha256 == _token_hash(token)))


def ensure_first_account(db: Database, home: Path, production: bool) -> Path | None:
    """In the embedded default, make ``admin`` when there is no account at all.

    The random password goes to ``<home>/initial-admin-password`` (mode 0600), never to a
    log. Returns that file when it was written; None when accounts exist or ``production``.
    """
    with db.sessions() as session:
        if session.scalar(select(func.count()).select_from(UserRow)):
            return None
    if production:
        log.warning("no accounts: create one with `radlens users add NAME` to log in")
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
        add_user(db, FIRST_ACCOUNT, password)
    except ConflictError:
        partial.unlink()
        return None  # another process made it first
    except BaseException:
        partial.unlink()
        raise
    partial.replace(path)
    log.warning(
        "made account %r; its password is in %s (change it: radlens users passwd %s)",
        FIRST_ACCOUNT,
        path,
        FIRST_ACCOUNT,
    )
    return path


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


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
