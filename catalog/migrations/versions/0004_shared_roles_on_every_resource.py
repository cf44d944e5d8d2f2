"""shared roles on every resource

One `resource_roles` table replaces `deployment_roles`. Deployment roles move over as they are;
every other existing artifact, collection, workload and secret gets its creator as owner (and a
deployment left without any owner gets its creator back), so nothing becomes unreachable.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (resource type, table) whose rows get their creator as owner.
OWNED = (
    ("artifact", "artifacts"),
    ("collection", "artifact_collections"),
    ("workload", "workloads"),
    ("secret", "secrets"),
    ("deployment", "deployments"),
)


def upgrade() -> None:
    op.create_table(
        "resource_roles",
        sa.Column("resource_type", sa.String(length=20), nullable=False),
        sa.Column("resource_id", sa.String(length=24), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("granted_by", sa.String(length=100), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "resource_id", "username"),
    )
    with op.batch_alter_table("resource_roles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_resource_roles_username_type", ["username", "resource_type"], unique=False
        )
    op.execute(
        "INSERT INTO resource_roles "
        "(resource_type, resource_id, username, role, granted_by, granted_at) "
        "SELECT 'deployment', deployment_id, username, role, granted_by, granted_at "
        "FROM deployment_roles"
    )
    for resource_type, table in OWNED:
        # Only where the resource has no owner yet: a deployment's sharing is kept as it was.
        op.execute(
            "INSERT INTO resource_roles "
            "(resource_type, resource_id, username, role, granted_by, granted_at) "
            f"SELECT '{resource_type}', t.id, t.created_by, 'owner', t.created_by, t.created_at "
            f"FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM resource_roles r "
            f"WHERE r.resource_type = '{resource_type}' AND r.resource_id = t.id "
            "AND r.role = 'owner')"
        )
    op.drop_table("deployment_roles")


def downgrade() -> None:
    op.create_table(
        "deployment_roles",
        sa.Column("deployment_id", sa.String(length=24), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("granted_by", sa.String(length=100), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("deployment_id", "username"),
    )
    op.execute(
        "INSERT INTO deployment_roles (deployment_id, username, role, granted_by, granted_at) "
        "SELECT resource_id, username, role, granted_by, granted_at FROM resource_roles "
        "WHERE resource_type = 'deployment'"
    )
    with op.batch_alter_table("resource_roles", schema=None) as batch_op:
        batch_op.drop_index("ix_resource_roles_username_type")
    op.drop_table("resource_roles")
