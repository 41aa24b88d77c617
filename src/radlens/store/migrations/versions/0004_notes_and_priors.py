"""Clinical notes per study, and the patient key that finds prior studies.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Studies received before this revision have no patient key (it is made from the
    # Patient ID at intake), so they are not found as priors.
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("notes_text", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("notes_updated_at", sa.DateTime(), nullable=True))
        batch.add_column(
            sa.Column("notes_updated_by", sa.String(64), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("patient_key", sa.String(64), nullable=True))
    op.create_index("ix_studies_patient_key", "studies", ["patient_key"])


def downgrade() -> None:
    op.drop_index("ix_studies_patient_key", "studies")
    with op.batch_alter_table("studies") as batch:
        for column in ("patient_key", "notes_updated_by", "notes_updated_at", "notes_text"):
            batch.drop_column(column)
