"""FHIR resource ids -> study, for the /fhir reads by id.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Studies analyzed before this table existed are indexed on the first read that misses
    # (radlens.store.exports.index_missing), so no data migration is needed here.
    op.create_table(
        "fhir_resources",
        sa.Column("resource_type", sa.String(32), primary_key=True),
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("study_uid", sa.String(64), sa.ForeignKey("studies.study_uid"), primary_key=True),
    )
    op.create_index("ix_fhir_resources_study_uid", "fhir_resources", ["study_uid"])


def downgrade() -> None:
    op.drop_table("fhir_resources")
