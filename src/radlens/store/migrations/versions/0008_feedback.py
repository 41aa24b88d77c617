"""Feedback records: a reader's confidence, an edited box, the model that made the finding;
the equipment of each series, for monitoring per site and scanner.

``finding_reviews`` gets ``confidence`` (the reader's confidence in the decision, 1-5, or
null when not given), ``box_px`` (the box the reader drew on a box edit: ``[x0, y0, x1,
y1]`` in source pixels, or null) and ``model_name`` / ``model_version`` (copied from the
finding as shown, indexed so that feedback and monitoring select one model's rows without
reading every finding document). Rows written before keep null confidence and box; their
model columns are filled from the stored ``finding`` JSON.

``series`` gets ``manufacturer``, ``manufacturer_model`` and ``station_name`` (DICOM
Manufacturer, ManufacturerModelName, StationName; null = not read yet): ``radlens.feedback``
reads them from a stored file of the series the first time it needs them and keeps them
here, so monitoring and the learning queue do not open files on every request.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("finding_reviews") as batch:
        batch.add_column(sa.Column("confidence", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("box_px", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("model_name", sa.String(128), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("model_version", sa.String(64), nullable=False, server_default="")
        )
    op.create_index("ix_finding_reviews_model", "finding_reviews", ["model_name", "model_version"])
    with op.batch_alter_table("series") as batch:
        batch.add_column(sa.Column("manufacturer", sa.String(64), nullable=True))
        batch.add_column(sa.Column("manufacturer_model", sa.String(64), nullable=True))
        batch.add_column(sa.Column("station_name", sa.String(64), nullable=True))
    reviews = sa.table(
        "finding_reviews",
        sa.column("id", sa.Integer),
        sa.column("finding", sa.JSON),
        sa.column("model_name", sa.String),
        sa.column("model_version", sa.String),
    )
    connection = op.get_bind()
    for row_id, finding in connection.execute(sa.select(reviews.c.id, reviews.c.finding)):
        document: Any = json.loads(finding) if isinstance(finding, str) else finding
        if not isinstance(document, dict):
            continue
        connection.execute(
            reviews.update()
            .where(reviews.c.id == row_id)
            .values(
                model_name=str(document.get("model_name", ""))[:128],
                model_version=str(document.get("model_version", ""))[:64],
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("series") as batch:
        batch.drop_column("station_name")
        batch.drop_column("manufacturer_model")
        batch.drop_column("manufacturer")
    op.drop_index("ix_finding_reviews_model", table_name="finding_reviews")
    with op.batch_alter_table("finding_reviews") as batch:
        batch.drop_column("model_version")
        batch.drop_column("model_name")
        batch.drop_column("box_px")
        batch.drop_column("confidence")
