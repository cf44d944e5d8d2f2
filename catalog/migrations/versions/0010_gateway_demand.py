"""each gateway process's calls in flight and held per workload, for the autoscaler

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    op.create_table(
        "gateway_demand",
        sa.Column("reporter", sa.String(80), primary_key=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("in_flight", json, nullable=False),
        sa.Column("held", json, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_demand")
