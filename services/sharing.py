"""Sharing: granting, changing, listing and forgetting roles on resources.

Who may do what with a role is decided in `services/access.py`; this module only writes and
reads the roles themselves. A resource keeps at least one owner.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import DeploymentEvent, ResourceRole, WorkloadEvent, utcnow
from models.sharing import ResourceType, RoleChange
from services import events
from services.access import NAMES
from services.errors import ConflictError, InvalidInputError
from services.listing import PageRequest, fetch_page

ROLE_SORT_KEYS = {
    "username": ResourceRole.username,
    "role": ResourceRole.role,
    "grantedAt": ResourceRole.granted_at,
}


def grant_owner(session: AsyncSession, kind: ResourceType, resource_id: str, username: str) -> None:
    """Make the creator of a new resource its first owner (written with the resource)."""
    session.add(
        ResourceRole(
            resource_type=kind,
            resource_id=resource_id,
            username=username,
            role="owner",
            granted_by=username,
        )
    )


async def forget(session: AsyncSession, kind: ResourceType, resource_id: str) -> None:
    """Delete every role on a resource that is being deleted."""
    await session.execute(
        delete(ResourceRole).where(
            ResourceRole.resource_type == kind, ResourceRole.resource_id == resource_id
        )
    )


async def list_roles(
    session: AsyncSession, kind: ResourceType, resource_id: str, page: PageRequest
) -> tuple[list[ResourceRole], int]:
    statement = select(ResourceRole).where(
        ResourceRole.resource_type == kind, ResourceRole.resource_id == resource_id
    )
    return await fetch_page(
        session,
        statement,
        page,
        sort_keys=ROLE_SORT_KEYS,
        default_order=[ResourceRole.username.asc()],
        tiebreak=ResourceRole.role,
    )


async def change_roles(
    session: AsyncSession,
    kind: ResourceType,
    resource_id: str,
    changes: list[RoleChange],
    actor: str,
) -> None:
    """Grant, change or (role None) remove the listed users' roles; at least one owner stays."""
    for index, change in enumerate(changes):
        if change.username in (c.username for c in changes[:index]):
            raise InvalidInputError.at(
                ("body", "roles", index, "username"), f"'{change.username}' is listed twice"
            )
    rows = await session.scalars(
        select(ResourceRole).where(
            ResourceRole.resource_type == kind, ResourceRole.resource_id == resource_id
        )
    )
    current = {row.username: row for row in rows}
    for change in changes:
        row = current.get(change.username)
        if change.role is None:
            if row is not None:
                await session.delete(row)
                del current[change.username]
        elif row is None:
            current[change.username] = ResourceRole(
                resource_type=kind,
                resource_id=resource_id,
                username=change.username,
                role=change.role,
                granted_by=actor,
            )
            session.add(current[change.username])
        else:
            row.role, row.granted_by, row.granted_at = change.role, actor, utcnow()
    if not any(row.role == "owner" for row in current.values()):
        raise ConflictError(f"a {NAMES[kind]} keeps at least one owner")
    await session.flush()
    summary = ", ".join(f"{c.username}={c.role or 'none'}" for c in changes)
    # Deployments and workloads have an event history; the audit log records every kind.
    if kind in ("deployment", "workload"):
        table = DeploymentEvent if kind == "deployment" else WorkloadEvent
        await events.add(
            session, table, resource_id, "roles_changed", f"{summary} by {actor}", actor
        )
