"""The migrations build exactly the schema the ORM models describe, on every database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from radlens.store.db import at_head, open_database
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
