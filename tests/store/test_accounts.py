"""Accounts and logins: scrypt hashes, sessions stored as token hashes, the first account."""

from __future__ import annotations

import base64
import hashlib
import logging
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from radlens.errors import AuthError, ConfigError, ConflictError, NotFoundError
from radlens.store.accounts import (
    FIRST_ACCOUNT,
    FIRST_PASSWORD_FILE,
    add_user,
    ensure_first_account,
    hash_password,
    list_users,
    login,
    logout,
    session_user,
    set_active,
    set_password,
    verify_password,
)
from radlens.store.db import Database, open_database
from radlens.store.models import SessionRow, UserRow, utcnow

NAME, PASSWORD = "ann", "correct horse battery"


def _session_rows(db: Database) -> list[SessionRow]:
    with db.sessions() as session:
        return list(session.scalars(select(SessionRow)))


def _stored_hash(db: Database, username: str) -> str:
    with db.sessions() as session:
        user = session.get(UserRow, username)
        assert user is not None
        return user.password_hash


# --- password hashes ---------------------------------------------------------------------


def test_password_hash_is_scrypt_with_its_parameters_salt_and_hash() -> None:
    stored = hash_password(PASSWORD)
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(base64.b64decode(salt, validate=True)) == 16
    assert len(base64.b64decode(digest, validate=True)) == 32
    # the hash is what RFC 7914 scrypt gives for that salt and those parameters
    expected = hashlib.scrypt(
        PASSWORD.encode(), salt=base64.b64decode(salt), n=16384, r=8, p=1, dklen=32
    )
    assert base64.b64decode(digest) == expected
    assert PASSWORD not in stored


def test_the_same_password_hashes_differently_each_time() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second and first.split("$")[4] != second.split("$")[4]
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)


def test_verify_accepts_the_password_and_nothing_else() -> None:
    stored = hash_password(PASSWORD)
    assert verify_password(PASSWORD, stored)
    for wrong in ("", "correct horse batter", "Correct horse battery", PASSWORD + " "):
        assert not verify_password(wrong, stored)


def test_verify_uses_the_parameters_stored_with_the_hash() -> None:
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=1024, r=4, p=2, dklen=32)
    encoded = (base64.b64encode(salt).decode(), base64.b64encode(digest).decode())
    stored = "$".join(("scrypt", "1024", "4", "2", *encoded))
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD, stored.replace("$1024$", "$2048$"))


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain text",
        "bcrypt$16384$8$1$c2FsdA==$aGFzaA==",
        "scrypt$16384$8$1$c2FsdA==",
        "scrypt$lots$8$1$c2FsdA==$aGFzaA==",
        "scrypt$16384$8$1$not base64!$aGFzaA==",
        "scrypt$3$8$1$c2FsdA==$aGFzaA==",  # n must be a power of two
    ],
    ids=["empty", "plain", "other-scheme", "five-fields", "bad-n", "bad-salt", "n-not-power-of-2"],
)
def test_verify_says_no_to_a_malformed_hash(stored: str) -> None:
    assert verify_password(PASSWORD, stored) is False


# --- accounts ----------------------------------------------------------------------------


def test_an_account_stores_only_a_hash_of_its_password(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    stored = _stored_hash(db, NAME)
    assert stored.startswith("scrypt$") and PASSWORD not in stored
    assert verify_password(PASSWORD, stored)
    assert list_users(db) == [(NAME, True)]


def test_a_taken_name_is_a_conflict(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    with pytest.raises(ConflictError, match="exists"):
        add_user(db, NAME, "another password")
    assert verify_password(PASSWORD, _stored_hash(db, NAME))


@pytest.mark.parametrize("password", ["", "short", "123456789"])
def test_a_password_under_10_characters_is_refused(db: Database, password: str) -> None:
    with pytest.raises(ConfigError, match="at least 10 characters"):
        add_user(db, NAME, password)
    assert list_users(db) == []


def test_a_password_of_exactly_10_characters_is_accepted(db: Database) -> None:
    add_user(db, NAME, "0123456789")
    assert login(db, NAME, "0123456789", hours=1)


@pytest.mark.parametrize("name", ["", "-ann", ".ann", "ann smith", "ann/..", "a" * 65, "änn"])
def test_an_invalid_account_name_is_refused(db: Database, name: str) -> None:
    with pytest.raises(ConfigError, match="account name"):
        add_user(db, name, PASSWORD)
    assert list_users(db) == []


def test_list_users_is_sorted_by_name_with_the_active_flag(db: Database) -> None:
    for name in ("zoe", "ann", "bob.smith@site"):
        add_user(db, name, PASSWORD)
    set_active(db, "zoe", active=False)
    assert list_users(db) == [("ann", True), ("bob.smith@site", True), ("zoe", False)]


# --- logins and sessions ------------------------------------------------------------------


def test_login_opens_a_session_for_the_account(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    token = login(db, NAME, PASSWORD, hours=1)
    assert len(token) >= 43  # 256 random bits, URL-safe base64
    assert session_user(db, token) == NAME
    assert login(db, NAME, PASSWORD, hours=1) != token


def test_the_database_keeps_only_a_sha256_of_the_session_token(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    token = login(db, NAME, PASSWORD, hours=2)
    (row,) = _session_rows(db)
    assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    stored = (row.token_sha256, row.username, str(row.created_at), str(row.expires_at))
    assert not any(token in value for value in stored)
    assert row.expires_at - row.created_at == timedelta(hours=2)
    # a token made of the stored hash opens nothing
    with pytest.raises(AuthError):
        session_user(db, row.token_sha256)


def test_wrong_password_and_unknown_name_fail_the_same_way(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    with pytest.raises(AuthError) as wrong:
        login(db, NAME, "not the password", hours=1)
    with pytest.raises(AuthError) as unknown:
        login(db, "nobody", PASSWORD, hours=1)
    with pytest.raises(AuthError) as invalid:
        login(db, "../not a name", PASSWORD, hours=1)
    assert str(wrong.value) == str(unknown.value) == str(invalid.value)
    assert _session_rows(db) == []


@pytest.mark.parametrize("token", ["", "made-up-token", "x" * 43])
def test_no_or_an_unknown_token_is_not_logged_in(db: Database, token: str) -> None:
    with pytest.raises(AuthError):
        session_user(db, token)


def test_an_expired_session_is_rejected(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    token = login(db, NAME, PASSWORD, hours=1)
    with db.sessions.begin() as session:
        session.execute(update(SessionRow).values(expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(AuthError, match="expired"):
        session_user(db, token)


def test_the_next_login_deletes_expired_sessions(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    old = login(db, NAME, PASSWORD, hours=1)
    with db.sessions.begin() as session:
        session.execute(update(SessionRow).values(expires_at=utcnow() - timedelta(minutes=1)))
    new = login(db, NAME, PASSWORD, hours=1)
    assert [row.token_sha256 for row in _session_rows(db)] == [
        hashlib.sha256(new.encode()).hexdigest()
    ]
    with pytest.raises(AuthError):
        session_user(db, old)


def test_logout_ends_only_that_session(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    laptop, phone = login(db, NAME, PASSWORD, hours=1), login(db, NAME, PASSWORD, hours=1)
    logout(db, laptop)
    with pytest.raises(AuthError):
        session_user(db, laptop)
    assert session_user(db, phone) == NAME
    logout(db, laptop)  # again: nothing happens
    logout(db, "")


def test_a_disabled_account_cannot_log_in_and_its_sessions_end(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    add_user(db, "bob", PASSWORD)
    token, other = login(db, NAME, PASSWORD, hours=1), login(db, "bob", PASSWORD, hours=1)
    set_active(db, NAME, active=False)
    with pytest.raises(AuthError):
        session_user(db, token)
    with pytest.raises(AuthError):
        login(db, NAME, PASSWORD, hours=1)
    assert [row.username for row in _session_rows(db)] == ["bob"]
    assert session_user(db, other) == "bob"
    set_active(db, NAME, active=True)
    with pytest.raises(AuthError):
        session_user(db, token)  # re-enabling does not bring old sessions back
    assert session_user(db, login(db, NAME, PASSWORD, hours=1)) == NAME


def test_a_session_of_an_account_disabled_behind_its_back_stops_working(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    token = login(db, NAME, PASSWORD, hours=1)
    with db.sessions.begin() as session:  # e.g. another tool clearing the flag directly
        session.execute(update(UserRow).values(active=False))
    with pytest.raises(AuthError, match="disabled"):
        session_user(db, token)


def test_a_new_password_ends_the_sessions_and_replaces_the_old_one(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    token = login(db, NAME, PASSWORD, hours=1)
    set_password(db, NAME, "a brand new password")
    with pytest.raises(AuthError):
        session_user(db, token)
    with pytest.raises(AuthError):
        login(db, NAME, PASSWORD, hours=1)
    assert session_user(db, login(db, NAME, "a brand new password", hours=1)) == NAME


def test_a_new_password_is_checked_like_a_first_one(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    with pytest.raises(ConfigError, match="at least 10"):
        set_password(db, NAME, "short")
    assert verify_password(PASSWORD, _stored_hash(db, NAME))


def test_changing_an_unknown_account_is_not_found(db: Database) -> None:
    with pytest.raises(NotFoundError, match="no account"):
        set_password(db, "nobody", PASSWORD)
    with pytest.raises(NotFoundError, match="no account"):
        set_active(db, "nobody", active=False)


# --- the first account -----------------------------------------------------------------


def test_first_start_makes_admin_with_a_random_password_only_its_owner_reads(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    with caplog.at_level(logging.INFO, logger="radlens"):
        path = ensure_first_account(db, home, production=False)
    assert path == home / FIRST_PASSWORD_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() != "from an earlier install\n"
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    password = path.read_text("utf-8").removesuffix("\n")
    assert len(password) >= 20 and "\n" not in password
    assert list_users(db) == [(FIRST_ACCOUNT, True)]
    assert session_user(db, login(db, FIRST_ACCOUNT, password, hours=1)) == FIRST_ACCOUNT
    # the log says where the password is, never what it is
    assert str(path) in caplog.text and password not in caplog.text


def test_each_first_start_draws_another_password(db: Database, tmp_path: Path) -> None:
    other = open_database(f"sqlite:///{tmp_path / 'other.sqlite'}")
    try:
        first = ensure_first_account(db, tmp_path / "a", production=False)
        second = ensure_first_account(other, tmp_path / "b", production=False)
    finally:
        other.close()
    assert first is not None and second is not None
    assert first.read_text("utf-8") != second.read_text("utf-8")


def test_first_account_is_made_only_once(db: Database, tmp_path: Path) -> None:
    path = ensure_first_account(db, tmp_path, production=False)
    assert path is not None
    password = path.read_text("utf-8")
    assert ensure_first_account(db, tmp_path, production=False) is None
    assert path.read_text("utf-8") == password
    assert list_users(db) == [(FIRST_ACCOUNT, True)]


def test_no_first_account_when_any_account_exists(db: Database, tmp_path: Path) -> None:
    add_user(db, NAME, PASSWORD)
    set_active(db, NAME, active=False)  # even a disabled one
    assert ensure_first_account(db, tmp_path, production=False) is None
    assert not (tmp_path / FIRST_PASSWORD_FILE).exists()
    assert list_users(db) == [(NAME, False)]


def test_production_never_makes_an_account_or_a_password(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    with caplog.at_level(logging.WARNING, logger="radlens"):
        assert ensure_first_account(db, home, production=True) is None
    assert list_users(db) == []
    assert not home.exists()  # no password file, not even the folder for one
    assert "radlens users add" in caplog.text
    with pytest.raises(AuthError):
        login(db, FIRST_ACCOUNT, "", hours=1)


def test_the_password_file_is_owner_only_even_when_one_was_left_behind(
    db: Database, tmp_path: Path
) -> None:
    leftover = tmp_path / FIRST_PASSWORD_FILE
    leftover.write_text("from an earlier install\n")
    leftover.chmod(0o644)
    path = ensure_first_account(db, tmp_path, production=False)
    assert path == leftover
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
