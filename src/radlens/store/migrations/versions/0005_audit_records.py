"""The audit trail (``privacy.audit``): hash-chained ATNA records and the chain's head.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

GENESIS_SHA256 = "0" * 64  # the "previous hash" of record 1 (privacy.audit.GENESIS_SHA256)


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=True),
        sa.Column("patient_key", sa.String(64), nullable=True),
        sa.Column("outcome", sa.Integer(), nullable=False),
        sa.Column("record_json", sa.Text(), nullable=False),
        sa.Column("prev_sha256", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )
    for column in ("user_id", "study_uid", "patient_key"):
        op.create_index(f"ix_audit_records_{column}", "audit_records", [column])
    chain = op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.Column("last_sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(chain, [{"id": 1, "last_number": 0, "last_sha256": GENESIS_SHA256}])


def downgrade() -> None:
    op.drop_table("audit_chain")
    for column in ("patient_key", "study_uid", "user_id"):
        op.drop_index(f"ix_audit_records_{column}", "audit_records")
    op.drop_table("audit_records")
