"""Encryption at rest: the findings document becomes text, to hold a sealed value.

``studies.result`` was JSON; it now holds ``privacy.crypto.seal_value`` text (the
``EncryptedJSON`` column type reads both). ``report_text``, ``notes_text`` and
``finding_reviews.note`` were text already and stay so. On SQLite the column stays as
declared (``JSON``, numeric affinity, which keeps any text that is not a number as text):
changing a type there means rebuilding ``studies``, whose dropping the rows of the tables
that refer to it forbid; ``store.encrypted`` declares it so for SQLite.

No value is encrypted here: a migration has no key. Rows written before are read as they
are, sealed by ``radlens serve`` at start (``store.keys.seal_plaintext_rows``) and by
``radlens keys rewrap``, which also seals the stored files (docs/privacy.md).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _alter_result(sa.JSON(), sa.Text(), "result::text")


def downgrade() -> None:
    # Only a database whose values are not sealed goes back: a sealed document is not JSON.
    _alter_result(sa.Text(), sa.JSON(), "result::json")


def _alter_result(old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any], using: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("studies", "result", type_=new, existing_type=old, postgresql_using=using)
