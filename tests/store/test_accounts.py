"""Accounts and logins: argon2id hashes (scrypt ones migrated), roles, sessions stored as token
hashes with idle logoff, login rate limiting, OIDC accounts, the first account."""

from __future__ import annotations

import base64
import hashlib
import logging
import stat
from datetime import timedelta
from pathlib import Path

import argon2
import pytest
from sqlalchemy import select, update

from radlens.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    NotFoundError,
    TooManyRequestsError,
)
from radlens.privacy.roles import Principal, Role
from radlens.store import accounts as accounts_module
from radlens.store.accounts import (
    FIRST_ACCOUNT,
    FIRST_PASSWORD_FILE,
    Account,
    add_user,
    change_own_password,
    end_session,
    ensure_first_account,
    hash_password,
    list_sessions,
    list_users,
    login,
    logout,
    needs_rehash,
    oidc_account,
    session_user,
    set_active,
    set_password,
    set_role,
    verify_password,
)
from radlens.store.db import Database, open_database
from radlens.store.logins import LoginLimits
from radlens.store.models import LoginFailureRow, SessionRow, UserRow, utcnow

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


def _scrypt_hash(password: str, n: int = 16384, r: int = 8, p: int = 1) -> str:
    """A hash as radlens wrote them before migration 0006 (RFC 7914 scrypt)."""
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    encoded = (base64.b64encode(salt).decode(), base64.b64encode(digest).decode())
    return "$".join(("scrypt", str(n), str(r), str(p), *encoded))


def test_password_hash_is_argon2id_with_its_parameters_salt_and_hash() -> None:
    stored = hash_password(PASSWORD)
    _, scheme, version, params, salt, digest = stored.split("$")
    assert (scheme, version, params) == ("argon2id", "v=19", "m=65536,t=3,p=4")
    assert len(base64.b64decode(salt + "==")) == 16
    # the hash is what argon2id (the reference implementation) gives for that salt
    raw = argon2.low_level.hash_secret_raw(
        PASSWORD.encode(),
        base64.b64decode(salt + "=="),
        time_cost=3,
        memory_cost=65536,
        parallelism=4,
        hash_len=32,
        type=argon2.low_level.Type.ID,
    )
    assert base64.b64decode(digest + "=") == raw
    assert PASSWORD not in stored
    assert not needs_rehash(stored)


def test_the_same_password_hashes_differently_each_time() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second and first.split("$")[4] != second.split("$")[4]
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)


def test_verify_accepts_the_password_and_nothing_else() -> None:
    stored = hash_password(PASSWORD)
    assert verify_password(PASSWORD, stored)
    for wrong in ("", "correct horse batter", "Correct horse battery", PASSWORD + " "):
        assert not verify_password(wrong, stored)


def test_verify_still_accepts_a_scrypt_hash_with_its_stored_parameters() -> None:
    stored = _scrypt_hash(PASSWORD, n=1024, r=4, p=2)
    assert verify_password(PASSWORD, stored)
    assert not verify_password("not the password", stored)
    assert not verify_password(PASSWORD, stored.replace("$1024$", "$2048$"))
    assert needs_rehash(stored)


def test_argon2_with_weaker_parameters_verifies_and_needs_a_rehash() -> None:
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert verify_password(PASSWORD, weak)
    assert needs_rehash(weak)
    assert not verify_password(PASSWORD, weak[:-4] + "AAAA")


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
        "$argon2id$v=19$m=65536,t=3,p=4$bad",
        "$argon2id$",
    ],
    ids=[
        "empty",
        "plain",
        "other-scheme",
        "five-fields",
        "bad-n",
        "bad-salt",
        "n-not-power-of-2",
        "argon2-truncated",
        "argon2-empty",
    ],
)
def test_verify_says_no_to_a_malformed_hash(stored: str) -> None:
    assert verify_password(PASSWORD, stored) is False


# --- accounts ----------------------------------------------------------------------------


def test_an_account_stores_only_a_hash_of_its_password(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    stored = _stored_hash(db, NAME)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert verify_password(PASSWORD, stored)
    assert list_users(db) == [Account(NAME, Role.RADIOLOGIST, True)]


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
    assert [(a.username, a.active) for a in list_users(db)] == [
        ("ann", True),
        ("bob.smith@site", True),
        ("zoe", False),
    ]


# --- logins and sessions ------------------------------------------------------------------


def test_login_opens_a_session_for_the_account(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    token = login(db, NAME, PASSWORD, hours=1)
    assert len(token) >= 43  # 256 random bits, URL-safe base64
    assert session_user(db, token).username == NAME
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
    assert session_user(db, phone).username == NAME
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
    assert session_user(db, other).username == "bob"
    set_active(db, NAME, active=True)
    with pytest.raises(AuthError):
        session_user(db, token)  # re-enabling does not bring old sessions back
    assert session_user(db, login(db, NAME, PASSWORD, hours=1)).username == NAME


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
    assert session_user(db, login(db, NAME, "a brand new password", hours=1)).username == NAME


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
    assert list_users(db) == [Account(FIRST_ACCOUNT, Role.ADMIN, True)]
    assert session_user(db, login(db, FIRST_ACCOUNT, password, hours=1)) == Principal(
        FIRST_ACCOUNT, Role.ADMIN
    )
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
    assert list_users(db) == [Account(FIRST_ACCOUNT, Role.ADMIN, True)]


def test_no_first_account_when_any_account_exists(db: Database, tmp_path: Path) -> None:
    add_user(db, NAME, PASSWORD)
    set_active(db, NAME, active=False)  # even a disabled one
    assert ensure_first_account(db, tmp_path, production=False) is None
    assert not (tmp_path / FIRST_PASSWORD_FILE).exists()
    assert list_users(db) == [Account(NAME, Role.RADIOLOGIST, False)]


def test_production_never_makes_an_account_and_refuses_to_start_without_an_admin(
    db: Database, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    with pytest.raises(ConfigError, match="radlens users add NAME --role admin"):
        ensure_first_account(db, home, production=True)
    assert list_users(db) == []
    assert not home.exists()  # no password file, not even the folder for one
    with pytest.raises(AuthError):
        login(db, FIRST_ACCOUNT, "", hours=1)
    add_user(db, NAME, PASSWORD)  # a radiologist is not enough
    with pytest.raises(ConfigError, match="active admin"):
        ensure_first_account(db, home, production=True)
    add_user(db, "boss", PASSWORD, Role.ADMIN)
    assert ensure_first_account(db, home, production=True) is None
    assert {a.username for a in list_users(db)} == {NAME, "boss"}


def test_the_password_file_is_owner_only_even_when_one_was_left_behind(
    db: Database, tmp_path: Path
) -> None:
    leftover = tmp_path / FIRST_PASSWORD_FILE
    leftover.write_text("from an earlier install\n")
    leftover.chmod(0o644)
    path = ensure_first_account(db, tmp_path, production=False)
    assert path == leftover
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- argon2 migration -----------------------------------------------------------------


def _set_hash(db: Database, username: str, stored: str) -> None:
    with db.sessions.begin() as session:
        session.execute(
            update(UserRow).where(UserRow.username == username).values(password_hash=stored)
        )


def test_a_scrypt_hash_logs_in_and_is_rehashed_to_argon2id(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    _set_hash(db, NAME, _scrypt_hash(PASSWORD))
    with pytest.raises(AuthError):
        login(db, NAME, "not the password", hours=1)
    assert _stored_hash(db, NAME).startswith("scrypt$")  # a failed login changes nothing
    login(db, NAME, PASSWORD, hours=1)
    stored = _stored_hash(db, NAME)
    assert stored.startswith("$argon2id$") and not needs_rehash(stored)
    assert verify_password(PASSWORD, stored)
    login(db, NAME, PASSWORD, hours=1)
    assert _stored_hash(db, NAME) == stored  # rehashed once, not at every login


def test_a_weak_argon2_hash_is_rehashed_at_login(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    _set_hash(db, NAME, weak)
    login(db, NAME, PASSWORD, hours=1)
    assert _stored_hash(db, NAME) != weak and not needs_rehash(_stored_hash(db, NAME))


def test_an_unknown_name_costs_one_argon2_check_like_a_known_one(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_user(db, NAME, PASSWORD)
    checked: list[str] = []
    real = accounts_module.verify_password
    monkeypatch.setattr(
        accounts_module, "verify_password", lambda pw, h: checked.append(h[:9]) or real(pw, h)
    )
    for name in (NAME, "nobody", "../bad name"):
        with pytest.raises(AuthError):
            login(db, name, "not the password", hours=1)
    assert checked == ["$argon2id"] * 3


# --- roles ----------------------------------------------------------------------------


def test_an_account_has_the_role_it_was_made_with(db: Database) -> None:
    add_user(db, NAME, PASSWORD, "technologist")
    assert list_users(db) == [Account(NAME, Role.TECHNOLOGIST, True)]
    assert session_user(db, login(db, NAME, PASSWORD, hours=1)).role is Role.TECHNOLOGIST
    with pytest.raises(ConfigError, match="unknown role"):
        add_user(db, "bob", PASSWORD, "superuser")


def test_a_new_role_ends_the_sessions_and_holds_at_the_next_login(db: Database) -> None:
    add_user(db, NAME, PASSWORD, Role.RESEARCHER)
    token = login(db, NAME, PASSWORD, hours=1)
    set_role(db, NAME, Role.RADIOLOGIST)
    with pytest.raises(AuthError):
        session_user(db, token)
    assert session_user(db, login(db, NAME, PASSWORD, hours=1)).role is Role.RADIOLOGIST
    with pytest.raises(NotFoundError):
        set_role(db, "nobody", Role.ADMIN)


def test_the_last_active_admin_keeps_the_role_and_stays_enabled(db: Database) -> None:
    add_user(db, "boss", PASSWORD, Role.ADMIN)
    with pytest.raises(ConflictError, match="last active admin"):
        set_role(db, "boss", Role.RADIOLOGIST)
    with pytest.raises(ConflictError, match="last active admin"):
        set_active(db, "boss", active=False)
    add_user(db, "deputy", PASSWORD, Role.ADMIN)
    set_role(db, "boss", Role.RADIOLOGIST)
    with pytest.raises(ConflictError):
        set_active(db, "deputy", active=False)
    assert [(a.username, a.role, a.active) for a in list_users(db)] == [
        ("boss", Role.RADIOLOGIST, True),
        ("deputy", Role.ADMIN, True),
    ]


# --- automatic logoff -----------------------------------------------------------------


def _age_session(db: Database, minutes: float) -> None:
    with db.sessions.begin() as session:
        session.execute(
            update(SessionRow).values(last_seen_at=utcnow() - timedelta(minutes=minutes))
        )


def test_a_session_unused_for_the_idle_time_ends(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    token = login(db, NAME, PASSWORD, hours=12)
    _age_session(db, 14)
    assert session_user(db, token, idle_minutes=15).username == NAME  # and marks it used
    (row,) = _session_rows(db)
    assert utcnow() - row.last_seen_at < timedelta(seconds=30)
    _age_session(db, 16)
    with pytest.raises(AuthError, match="15 minutes without use"):
        session_user(db, token, idle_minutes=15)
    assert _session_rows(db) == []  # the session is gone, not only refused


def test_use_keeps_a_session_alive_but_not_past_its_lifetime(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    token = login(db, NAME, PASSWORD, hours=1)
    _age_session(db, 5)
    session_user(db, token, idle_minutes=15)
    with db.sessions.begin() as session:
        session.execute(update(SessionRow).values(expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(AuthError, match="expired"):
        session_user(db, token, idle_minutes=15)


def test_last_use_is_written_at_most_once_a_minute(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    token = login(db, NAME, PASSWORD, hours=1)
    _age_session(db, 0.5)
    (before,) = _session_rows(db)
    session_user(db, token, idle_minutes=15)
    (after,) = _session_rows(db)
    assert after.last_seen_at == before.last_seen_at


# --- own sessions and passwords -----------------------------------------------------------


def test_an_account_lists_and_ends_only_its_own_sessions(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    add_user(db, "bob", PASSWORD)
    mine, spare = login(db, NAME, PASSWORD, hours=1), login(db, NAME, PASSWORD, hours=1)
    bobs = login(db, "bob", PASSWORD, hours=1)
    listed = list_sessions(db, NAME, mine)
    assert len(listed) == 2 and [s.current for s in listed].count(True) == 1
    assert all(mine not in s.id and len(s.id) == 20 for s in listed)
    (bob_session,) = list_sessions(db, "bob")
    with pytest.raises(NotFoundError):
        end_session(db, NAME, bob_session.id)  # another account's: not found
    assert session_user(db, bobs).username == "bob"
    (other,) = [s for s in listed if not s.current]
    end_session(db, NAME, other.id)
    with pytest.raises(AuthError):
        session_user(db, spare)
    assert session_user(db, mine).username == NAME


def test_changing_ones_own_password_needs_the_current_one(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    here, there = login(db, NAME, PASSWORD, hours=1), login(db, NAME, PASSWORD, hours=1)
    with pytest.raises(AuthError):
        change_own_password(db, NAME, "not the password", "a new password!", here)
    change_own_password(db, NAME, PASSWORD, "a new password!", here)
    assert session_user(db, here).username == NAME  # this session stays
    with pytest.raises(AuthError):
        session_user(db, there)  # the others end
    assert login(db, NAME, "a new password!", hours=1)


# --- rate limiting --------------------------------------------------------------------

LIMITS = LoginLimits(max_failures=3, max_failures_ip=5, lockout_s=30)


def _fail(db: Database, name: str = NAME, ip: str = "10.0.0.1") -> None:
    with pytest.raises(AuthError):
        login(db, name, "not the password", hours=1, client_ip=ip, limits=LIMITS)


def _unlock(db: Database) -> None:
    with db.sessions.begin() as session:
        session.execute(
            update(LoginFailureRow).values(locked_until=utcnow() - timedelta(seconds=1))
        )


def test_failed_logins_lock_the_name_with_retry_after(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    for _ in range(3):
        _fail(db)
    with pytest.raises(TooManyRequestsError) as locked:
        login(db, NAME, PASSWORD, hours=1, client_ip="10.0.0.2", limits=LIMITS)
    assert 25 <= locked.value.retry_after_s <= 30
    _unlock(db)
    assert login(db, NAME, PASSWORD, hours=1, client_ip="10.0.0.2", limits=LIMITS)


def test_each_failure_once_locked_doubles_the_wait(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    waits = []
    for _ in range(3):
        _fail(db, ip="")
        _unlock(db)
    for _ in range(3):
        _fail(db, ip="")
        with pytest.raises(TooManyRequestsError) as locked:
            login(db, NAME, PASSWORD, hours=1, limits=LIMITS)
        waits.append(locked.value.retry_after_s)
        _unlock(db)
    assert [round(w / 30) for w in waits] == [2, 4, 8]


def test_a_success_clears_the_name_but_not_the_address(db: Database) -> None:
    add_user(db, NAME, PASSWORD)
    add_user(db, "bob", PASSWORD)
    for name in (NAME, NAME, "bob", "bob"):
        _fail(db, name)
    login(db, NAME, PASSWORD, hours=1, client_ip="10.0.0.1", limits=LIMITS)  # 5th: a success
    _fail(db, NAME)  # NAME starts again from one failure; the address reaches 5
    with pytest.raises(TooManyRequestsError):
        login(db, "carol", PASSWORD, hours=1, client_ip="10.0.0.1", limits=LIMITS)
    assert login(db, NAME, PASSWORD, hours=1, client_ip="10.0.0.9", limits=LIMITS)


def test_the_failure_table_holds_no_name_or_address_in_clear(db: Database) -> None:
    _fail(db, "someone@example.org", "192.0.2.7")
    with db.sessions() as session:
        rows = list(session.scalars(select(LoginFailureRow)))
    assert len(rows) == 2
    assert all("someone" not in r.key_sha256 and "192.0.2" not in r.key_sha256 for r in rows)


# --- OIDC accounts ----------------------------------------------------------------------


def test_an_oidc_account_is_made_once_and_its_role_follows_the_provider(db: Database) -> None:
    subject = "https://idp.example|123"
    assert oidc_account(db, subject, "dr.who", Role.RADIOLOGIST) == "dr.who"
    assert list_users(db) == [Account("dr.who", Role.RADIOLOGIST, True, sso=True)]
    assert oidc_account(db, subject, "dr.who", Role.TECHNOLOGIST) == "dr.who"
    assert list_users(db)[0].role is Role.TECHNOLOGIST
    with pytest.raises(AuthError):
        login(db, "dr.who", "", hours=1)  # no password: OIDC only


def test_oidc_never_takes_over_a_local_account(db: Database) -> None:
    add_user(db, NAME, PASSWORD, Role.ADMIN)
    with pytest.raises(ConflictError, match="not made by this identity provider"):
        oidc_account(db, "https://idp.example|1", NAME, Role.ADMIN)
    assert list_users(db) == [Account(NAME, Role.ADMIN, True)]


def test_a_disabled_oidc_account_stays_disabled(db: Database) -> None:
    oidc_account(db, "https://idp.example|7", "dr.x", Role.RADIOLOGIST)
    set_active(db, "dr.x", active=False)
    with pytest.raises(AuthError, match="disabled"):
        oidc_account(db, "https://idp.example|7", "dr.x", Role.RADIOLOGIST)
