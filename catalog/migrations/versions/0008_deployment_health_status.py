"""a deployment's health verdict gets columns of its own; its status is read from its workload

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 21:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# `status` held the health verdict and a swap in progress; a swap's verdict is not known.
VERDICTS = {
    "active": "healthy",
    "degraded": "degraded",
    "inactive": "unknown",
    "swapping": "unknown",
}


def _translate(column: str, mapping: dict[str, str], default: str) -> None:
    deployments = sa.table("deployments", sa.column(column, sa.String()))
    op.execute(
        deployments.update().values(
            {column: sa.case(mapping, value=deployments.c[column], else_=sa.literal(default))}
        )
    )


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.drop_index("ix_deployments_status")
        batch.alter_column("status", new_column_name="health_status")
        batch.alter_column("status_reason", new_column_name="health_reason")
    op.create_index("ix_deployments_health_status", "deployments", ["health_status"])
    _translate("health_status", VERDICTS, "unknown")


def downgrade() -> None:
    _translate("health_status", {"healthy": "active", "degraded": "degraded"}, "inactive")
    op.drop_index("ix_deployments_health_status", "deployments")
    with op.batch_alter_table("deployments") as batch:
        batch.alter_column("health_status", new_column_name="status")
        batch.alter_column("health_reason", new_column_name="status_reason")
    op.create_index("ix_deployments_status", "deployments", ["status"])
