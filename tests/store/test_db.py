"""The migrations build exactly the schema the ORM models describe, on every database."""

from __future__ import annotations

import base64
import hashlib

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from radlens.store.db import _alembic_config, at_head, make_engine, open_database
from radlens.store.models import Base


def test_migrations_match_the_models(database_url: str) -> None:
    db = open_database(database_url)
    try:
        assert at_head(db.engine)
        with db.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
    finally:
        db.close()


def _migrate_to(database_url: str, revision: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            config = _alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def test_migration_0006_gives_roles_keeps_scrypt_hashes_and_ends_sessions(
    database_url: str,
) -> None:
    from radlens.privacy.roles import Role
    from radlens.store.accounts import list_users, login, session_user

    _migrate_to(database_url, "0005")
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"old password 1", salt=salt, n=16384, r=8, p=1, dklen=32)
    scrypt = "$".join(
        (
            "scrypt",
            "16384",
            "8",
            "1",
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        )
    )
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            for name, created in (
                ("zed", "2024-01-01"),
                ("admin", "2024-02-01"),
                ("amy", "2024-03-01"),
            ):
                connection.execute(
                    text(
                        "INSERT INTO users (username, password_hash, active, created_at) "
                        "VALUES (:n, :h, :a, :c)"
                    ),
                    {"n": name, "h": scrypt, "a": True, "c": created},
                )
            connection.execute(
                text(
                    "INSERT INTO sessions (token_sha256, username, created_at, expires_at) "
                    "VALUES (:t, 'amy', '2024-01-01', '2999-01-01')"
                ),
                {"t": "a" * 64},
            )
    finally:
        engine.dispose()
    db = open_database(database_url)
    try:
        assert {(a.username, a.role) for a in list_users(db)} == {
            ("admin", Role.ADMIN),  # the first start's account, not the oldest one
            ("amy", Role.RADIOLOGIST),
            ("zed", Role.RADIOLOGIST),
        }
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM sessions")).scalar() == 0
        token = login(db, "amy", "old password 1", hours=1)  # the scrypt hash still opens
        assert session_user(db, token).username == "amy"
    finally:
        db.close()


def test_migration_0006_makes_the_oldest_account_admin_when_none_is_named_admin(
    database_url: str,
) -> None:
    from radlens.privacy.roles import Role
    from radlens.store.accounts import list_users

    _migrate_to(database_url, "0005")
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            for name, created in (("zed", "2024-01-01"), ("amy", "2024-03-01")):
                connection.execute(
                    text(
                        "INSERT INTO users (username, password_hash, active, created_at) "
                        "VALUES (:n, 'x', :a, :c)"
                    ),
                    {"n": name, "a": True, "c": created},
                )
    finally:
        engine.dispose()
    db = open_database(database_url)
    try:
        assert {(a.username, a.role) for a in list_users(db)} == {
            ("zed", Role.ADMIN),
            ("amy", Role.RADIOLOGIST),
        }
    finally:
        db.close()
