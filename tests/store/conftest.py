"""Store fixtures: a migrated database (SQLite, then PostgreSQL) and a storage folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from radlens.store.db import Database, open_database
from radlens.store.intake import Intake


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = open_database(database_url)
    yield database
    database.close()


@pytest.fixture
def intake(db: Database, tmp_path: Path) -> Intake:
    return Intake(db, tmp_path / "storage")
