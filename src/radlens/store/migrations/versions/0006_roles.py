"""Accounts get roles (admin, radiologist, technologist, researcher); sessions get idle expiry.

Existing accounts become radiologists (what every account could do before), except one
admin, so that a site keeps someone who can manage accounts: the account named ``admin``
(the one the first start makes) when it exists, else the oldest account. Existing sessions
are ended: each needs a last-use time, and everyone logs in once more after the upgrade.
Also the tables of failed logins (rate limiting) and OIDC logins under way.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # First: SQLite rebuilds ``users`` below, and with foreign keys on it cannot drop the
    # old table while sessions point at it.
    op.execute("DELETE FROM sessions")
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("role", sa.String(16), nullable=False, server_default="radiologist")
        )
        batch.add_column(sa.Column("oidc_subject", sa.String(512), nullable=True))
        batch.create_unique_constraint("uq_users_oidc_subject", ["oidc_subject"])
    users = sa.table(
        "users",
        sa.column("username", sa.String),
        sa.column("role", sa.String),
        sa.column("created_at", sa.DateTime),
    )
    connection = op.get_bind()
    first_admin = connection.execute(
        sa.select(users.c.username)
        .order_by(sa.case((users.c.username == "admin", 0), else_=1), users.c.created_at)
        .limit(1)
    ).scalar()
    if first_admin is not None:
        op.execute(users.update().where(users.c.username == first_admin).values(role="admin"))

    with op.batch_alter_table("sessions", recreate="always") as batch:
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(), nullable=False))

    op.create_table(
        "login_failures",
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key_sha256"),
    )
    op.create_table(
        "oidc_states",
        sa.Column("state_sha256", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("redirect_uri", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("state_sha256"),
    )


def downgrade() -> None:
    op.execute("DELETE FROM sessions")
    op.drop_table("oidc_states")
    op.drop_table("login_failures")
    with op.batch_alter_table("sessions", recreate="always") as batch:
        batch.drop_column("last_seen_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_oidc_subject", type_="unique")
        batch.drop_column("oidc_subject")
        batch.drop_column("role")
