"""Reading room: accounts and sessions, finding reviews, reports, radiologist priority.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("ai_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("radiologist_priority", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("report_text", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("report_updated_at", sa.DateTime(), nullable=True))
        batch.add_column(
            sa.Column("report_updated_by", sa.String(64), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("signed_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("signed_by", sa.String(64), nullable=False, server_default=""))
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("instance_number", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("frames", sa.Integer(), nullable=False, server_default="1"))
    op.create_table(
        "users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), sa.ForeignKey("users.username"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_sessions_username", "sessions", ["username"])
    op.create_table(
        "finding_reviews",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("study_uid", sa.String(64), sa.ForeignKey("studies.study_uid"), nullable=False),
        sa.Column("finding_id", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("finding", sa.JSON(), nullable=False),
    )
    op.create_index("ix_finding_reviews_study", "finding_reviews", ["study_uid", "finding_id"])


def downgrade() -> None:
    op.drop_table("finding_reviews")
    op.drop_table("sessions")
    op.drop_table("users")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("frames")
        batch.drop_column("instance_number")
    with op.batch_alter_table("studies") as batch:
        for column in (
            "signed_by",
            "signed_at",
            "report_updated_by",
            "report_updated_at",
            "report_text",
            "radiologist_priority",
            "ai_score",
        ):
            batch.drop_column(column)
