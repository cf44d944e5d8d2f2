"""Who may do what with each resource: shared roles, with the key's global role as a ceiling.

Every artifact, artifact collection, workload, secret and deployment has users with roles on
it (`resource_roles`); whoever creates a resource becomes its first owner.

* `owner`: read, use, change, share and delete it;
* `user`: read and use it;
* `consumer`: only use it (invoke a deployment or workload, reference a secret, run a
  registered artifact).

The global role of the API key is a ceiling, never a grant: a `viewer` key reads and uses but
never changes anything, whatever its roles; an `editor` key creates resources and changes the
ones it owns; an `admin` key acts as owner of everything. Two roles are inherited:

* a role on an artifact collection counts as the same role on its registered versions;
* `owner` or `user` on a deployment counts as `user` on the workload it routes to, so the
  people running a deployment can read, invoke and debug what serves it (not change it).

A caller with no role on a resource gets 404 for it: what is not shared does not exist for
them. See docs/access.md for the matrix over every route; granting and listing roles is in
`services/sharing.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from catalog.tables import (
    Artifact,
    ArtifactCollection,
    Base,
    Deployment,
    ResourceRole,
    Secret,
    Workload,
)
from models.api_keys import Role
from models.sharing import ResourceType, ShareRole
from services.api_keys import Principal
from services.errors import InvalidInputError, NotFoundError, PermissionDeniedError

Need = Literal["use", "read", "manage"]
ALLOWED: dict[Need, frozenset[ShareRole]] = {
    "use": frozenset({"owner", "user", "consumer"}),
    "read": frozenset({"owner", "user"}),
    "manage": frozenset({"owner"}),
}
# What each key role may ever do, whatever its roles on resources.
CEILING: dict[Role, frozenset[Need]] = {
    "viewer": frozenset({"use", "read"}),
    "editor": frozenset({"use", "read", "manage"}),
    "admin": frozenset({"use", "read", "manage"}),
}
RANK: dict[ShareRole, int] = {"consumer": 0, "user": 1, "owner": 2}
TABLES: dict[ResourceType, type[Base]] = {
    "artifact": Artifact,
    "collection": ArtifactCollection,
    "workload": Workload,
    "secret": Secret,
    "deployment": Deployment,
}
NAMES: dict[ResourceType, str] = {
    "artifact": "artifact",
    "collection": "artifact collection",
    "workload": "workload",
    "secret": "secret",
    "deployment": "deployment",
}


def strongest(*roles: ShareRole | None) -> ShareRole | None:
    best: ShareRole | None = None
    for role in roles:
        if role is not None and (best is None or RANK[role] > RANK[best]):
            best = role
    return best


def _own(
    kind: ResourceType, username: str, roles: Iterable[ShareRole] = tuple(RANK)
) -> Select[str]:
    """Ids of `kind` on which `username` holds one of `roles` directly."""
    return select(ResourceRole.resource_id).where(
        ResourceRole.resource_type == kind,
        ResourceRole.username == username,
        ResourceRole.role.in_(tuple(roles)),
    )


async def _direct(
    session: AsyncSession, kind: ResourceType, resource_id: str, username: str
) -> ShareRole | None:
    role: ShareRole | None = await session.scalar(
        select(ResourceRole.role).where(
            ResourceRole.resource_type == kind,
            ResourceRole.resource_id == resource_id,
            ResourceRole.username == username,
        )
    )
    return role


def _deployments_routing_to_workloads(username: str) -> Select[str]:
    """Ids of workloads behind a deployment on which `username` is owner or user."""
    return (
        select(Deployment.workload_id)
        .join(
            ResourceRole,
            and_(
                ResourceRole.resource_type == "deployment",
                ResourceRole.resource_id == Deployment.id,
            ),
        )
        .where(ResourceRole.username == username, ResourceRole.role.in_(ALLOWED["read"]))
    )


async def role_on(
    session: AsyncSession, kind: ResourceType, resource_id: str, username: str
) -> ShareRole | None:
    """The user's role on the resource, direct or inherited (see the module docstring); None
    when they have none. Global roles are not considered here."""
    role = await _direct(session, kind, resource_id, username)
    if kind == "artifact" and role != "owner":
        collection = await session.scalar(
            select(Artifact.collection_id).where(
                Artifact.id == resource_id, Artifact.status == "registered"
            )
        )
        if collection is not None:
            role = strongest(role, await _direct(session, "collection", collection, username))
    elif kind == "workload" and role not in ("owner", "user"):
        via = await session.scalar(
            _deployments_routing_to_workloads(username)
            .where(Deployment.workload_id == resource_id)
            .limit(1)
        )
        if via is not None:
            role = strongest(role, "user")
    return role


async def effective_role(
    session: AsyncSession, kind: ResourceType, resource_id: str, principal: Principal
) -> ShareRole | None:
    """`role_on`, with admins owning everything."""
    if principal.role == "admin":
        return "owner"
    return await role_on(session, kind, resource_id, principal.username)


async def require(
    session: AsyncSession,
    kind: ResourceType,
    resource_id: str,
    principal: Principal,
    need: Need,
) -> ShareRole:
    """The caller's role on the resource, if it and their key allow `need`.

    Raises:
        NotFoundError: no such resource, or the caller has no role on it.
        PermissionDeniedError: the role, or the key's global role, does not allow `need`.
    """
    row = await session.get(TABLES[kind], resource_id)
    role = await effective_role(session, kind, resource_id, principal) if row else None
    if row is None or role is None:
        raise NotFoundError(NAMES[kind], resource_id)
    if need not in CEILING[principal.role]:
        raise PermissionDeniedError(
            f"your key's role is {principal.role}; to {need} a {NAMES[kind]} you need an "
            "editor or admin key"
        )
    if role not in ALLOWED[need]:
        raise PermissionDeniedError(
            f"your role on {NAMES[kind]} '{resource_id}' is {role}; to {need} it you need "
            f"one of {sorted(ALLOWED[need])}"
        )
    return role


def readable(
    kind: ResourceType, column: InstrumentedAttribute[str], principal: Principal
) -> ColumnElement[bool] | None:
    """A condition on `column` (the resource's id) selecting what the caller may read, for
    lists; None for admins, who read everything."""
    if principal.role == "admin":
        return None
    username = principal.username
    condition: ColumnElement[bool] = column.in_(_own(kind, username, ALLOWED["read"]))
    if kind == "artifact":
        in_collection = and_(
            Artifact.status == "registered",
            Artifact.collection_id.in_(_own("collection", username, ALLOWED["read"])),
        )
        condition = or_(condition, in_collection)
    elif kind == "workload":
        condition = or_(condition, column.in_(_deployments_routing_to_workloads(username)))
    return condition


async def roles_of(
    session: AsyncSession, kind: ResourceType, ids: list[str], principal: Principal
) -> dict[str, ShareRole]:
    """The caller's direct roles on each of `ids` (owner of all, for admins)."""
    if principal.role == "admin":
        return dict.fromkeys(ids, "owner")
    rows = await session.execute(
        select(ResourceRole.resource_id, ResourceRole.role).where(
            ResourceRole.resource_type == kind,
            ResourceRole.resource_id.in_(ids),
            ResourceRole.username == principal.username,
        )
    )
    return {resource_id: role for resource_id, role in rows}


async def require_reference(
    session: AsyncSession,
    kind: ResourceType,
    resource_id: str,
    principal: Principal,
    need: Need,
    loc: tuple[str | int, ...],
) -> ShareRole:
    """`require` for a resource a request body names: one the caller cannot see is a 422 at
    `loc` (as if it did not exist), not a 404 of the route."""
    try:
        return await require(session, kind, resource_id, principal, need)
    except NotFoundError:
        raise InvalidInputError.at(
            loc, f"{NAMES[kind]} '{resource_id}' does not exist or is not shared with you"
        ) from None
