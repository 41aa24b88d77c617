"""Store fixtures: a migrated SQLite database and storage folder under tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from radlens.store.db import Database, open_database
from radlens.store.intake import Intake


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'radlens.sqlite'}")
    yield database
    database.close()


@pytest.fixture
def intake(db: Database, tmp_path: Path) -> Intake:
    return Intake(db, tmp_path / "storage")
