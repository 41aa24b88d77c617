"""Store fixtures: a migrated database (SQLite, then PostgreSQL) with a key ring, and a storage
folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from radlens.privacy.crypto import KeyRing
from radlens.store.db import Database, open_database
from radlens.store.intake import Intake


@pytest.fixture
def keys() -> KeyRing:
    """A key ring: the store's tests run with encryption at rest, as ``radlens serve`` does."""
    return KeyRing.generate()


@pytest.fixture
def db(database_url: str, keys: KeyRing) -> Iterator[Database]:
    database = open_database(database_url, keys=keys)
    yield database
    database.close()


@pytest.fixture
def intake(db: Database, tmp_path: Path) -> Intake:
    return Intake(db, tmp_path / "storage")
