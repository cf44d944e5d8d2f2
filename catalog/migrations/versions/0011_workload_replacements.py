"""in-place replacements of a workload's artifact (candidate, steps, weight, history)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 01:00:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "workload_replacements",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column(
            "workload_id",
            sa.String(24),
            sa.ForeignKey("workloads.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("candidate_workload_id", sa.String(24), nullable=False),
        sa.Column("candidate_artifact_id", sa.String(24), nullable=False),
        sa.Column("previous_artifact_id", sa.String(24), nullable=False),
        sa.Column("runtime", _json(), nullable=True),
        sa.Column("strategy", sa.String(20), nullable=False),
        sa.Column("config", _json(), nullable=False),
        sa.Column("steps", _json(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("current_step", sa.Integer(), nullable=True),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("history", _json(), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("switched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_workload_replacements_workload_id", "workload_replacements", ["workload_id"]
    )
    op.create_index("ix_workload_replacements_status", "workload_replacements", ["status"])


def downgrade() -> None:
    op.drop_index("ix_workload_replacements_status", "workload_replacements")
    op.drop_index("ix_workload_replacements_workload_id", "workload_replacements")
    op.drop_table("workload_replacements")
