"""per-minute traffic of each deployment, one row per gateway process

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment_traffic",
        sa.Column("deployment_id", sa.String(24), primary_key=True),
        sa.Column("minute", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("writer", sa.String(40), primary_key=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("server_errors", sa.Integer(), nullable=False),
        sa.Column("user_errors", sa.Integer(), nullable=False),
        sa.Column("latency_sum_ms", sa.Double(), nullable=False),
        sa.Column("latency_max_ms", sa.Double(), nullable=False),
        sa.Column(
            "latency_histogram",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
    )
    op.create_index("ix_deployment_traffic_minute", "deployment_traffic", ["minute"])


def downgrade() -> None:
    op.drop_index("ix_deployment_traffic_minute", "deployment_traffic")
    op.drop_table("deployment_traffic")
