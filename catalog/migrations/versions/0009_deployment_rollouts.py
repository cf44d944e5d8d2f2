"""progressive rollouts of a deployment (steps, the candidate's weight, history) and the
per-minute traffic of each workload behind a deployment, which a rollout's analysis reads

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 23:00:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "deployment_rollouts",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column(
            "deployment_id",
            sa.String(24),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("stable_workload_id", sa.String(24), nullable=False),
        sa.Column("candidate_workload_id", sa.String(24), nullable=False),
        sa.Column("steps", _json(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("current_step", sa.Integer(), nullable=True),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("options", _json(), nullable=False),
        sa.Column("history", _json(), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_deployment_rollouts_deployment_id", "deployment_rollouts", ["deployment_id"]
    )
    op.create_index("ix_deployment_rollouts_status", "deployment_rollouts", ["status"])
    op.create_table(
        "workload_traffic",
        sa.Column("workload_id", sa.String(24), primary_key=True),
        sa.Column("minute", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("writer", sa.String(40), primary_key=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("server_errors", sa.Integer(), nullable=False),
        sa.Column("user_errors", sa.Integer(), nullable=False),
        sa.Column("latency_sum_ms", sa.Double(), nullable=False),
        sa.Column("latency_max_ms", sa.Double(), nullable=False),
        sa.Column("latency_histogram", _json(), nullable=False),
    )
    op.create_index("ix_workload_traffic_minute", "workload_traffic", ["minute"])


def downgrade() -> None:
    op.drop_index("ix_workload_traffic_minute", "workload_traffic")
    op.drop_table("workload_traffic")
    op.drop_index("ix_deployment_rollouts_status", "deployment_rollouts")
    op.drop_index("ix_deployment_rollouts_deployment_id", "deployment_rollouts")
    op.drop_table("deployment_rollouts")
