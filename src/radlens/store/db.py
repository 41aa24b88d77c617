"""Open the database: engine, sessions, and Alembic migrations run at start.

SQLite (the embedded default) is opened in WAL mode with foreign keys on and
``synchronous=FULL``, so a committed row survives a crash of the process or the machine;
every transaction starts with ``BEGIN IMMEDIATE`` so that concurrent writers (one thread
per DICOM association) wait for each other instead of failing with "database is locked".
PostgreSQL (``postgresql://...``) uses the same models and migrations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from radlens.errors import ConfigError
from radlens.privacy.crypto import KeyRing
from radlens.store.encrypted import attach_keys

MIGRATIONS = Path(__file__).parent / "migrations"
_SQLITE_BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Database:
    """An open, migrated database.

    ``keys`` seal the encrypted columns (``store.encrypted``) and the stored files
    (``store.files.write_stored``); None: nothing new is encrypted.
    """

    engine: Engine
    sessions: sessionmaker[Session]
    keys: KeyRing | None = None

    def close(self) -> None:
        self.engine.dispose()


def open_database(url: str, migrate: bool = True, keys: KeyRing | None = None) -> Database:
    """Connect to ``url`` and bring its schema to the newest migration; the encrypted
    columns use ``keys``.

    Raises:
        ConfigError: the URL is not valid or the database cannot be reached.

    Example:
        >>> db = open_database("sqlite:///:memory:")  # doctest: +SKIP
    """
    engine = make_engine(url)
    attach_keys(engine, keys)
    try:
        if migrate:
            upgrade(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise ConfigError(f"database {_safe(url)}: {type(exc).__name__}; check --db") from exc
    return Database(engine, sessionmaker(engine, expire_on_commit=False), keys)


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"not a database URL: {_safe(url)}") from exc
    if parsed.drivername == "postgresql":
        # SQLAlchemy's default driver is psycopg2; radlens[postgres] installs psycopg 3.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed,
        connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def upgrade(engine: Engine) -> None:
    """``alembic upgrade head`` on ``engine``."""
    with engine.begin() as connection:
        config = _alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def at_head(engine: Engine) -> bool:
    """True when the database schema is at the newest migration."""
    heads = set(ScriptDirectory.from_config(_alembic_config()).get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current == heads


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=FULL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"
