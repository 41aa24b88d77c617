"""Batch results: one row per study and model set of a ``radlens batch`` run.

The primary key (study UID, models key) makes writing a result idempotent: a study that a
lost Dask worker made the scheduler run twice, or a rerun, updates its row instead of
adding one. ``models_key`` is a short hash of the sorted ``name@version`` list in
``models``; a rerun with the same models skips the studies whose row is ``done``.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_results",
        sa.Column("study_uid", sa.String(64), primary_key=True),
        sa.Column("models_key", sa.String(16), primary_key=True),
        sa.Column("models", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("n_series", sa.Integer(), nullable=False),
        sa.Column("n_findings", sa.Integer(), nullable=False),
        sa.Column("n_positive", sa.Integer(), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("output", sa.String(1024), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("worker", sa.String(128), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_batch_results_status", "batch_results", ["status"])


def downgrade() -> None:
    op.drop_table("batch_results")
