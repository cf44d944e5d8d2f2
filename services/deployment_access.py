"""Who may do what with a deployment: sharing roles and invoke tokens.

Roles, per deployment and user: `owner` manages and shares, `user` reads and invokes,
`consumer` only invokes. Admins act as owners everywhere. Invoke tokens are not API keys: each
invokes one deployment and can do nothing else.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import Deployment, DeploymentRole, InvokeToken, utcnow
from models.deployments import RoleChange, ShareRole
from services.api_keys import Principal
from services.deployments import add_event
from services.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)

TOKEN_PREFIX = "wdt_"
Need = Literal["invoke", "read", "manage"]
ALLOWED: dict[Need, frozenset[str]] = {
    "invoke": frozenset({"owner", "user", "consumer"}),
    "read": frozenset({"owner", "user"}),
    "manage": frozenset({"owner"}),
}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def role_of(
    session: AsyncSession, deployment_id: str, principal: Principal
) -> ShareRole | None:
    if principal.role == "admin":
        return "owner"
    role = await session.scalar(
        select(DeploymentRole.role).where(
            DeploymentRole.deployment_id == deployment_id,
            DeploymentRole.username == principal.username,
        )
    )
    return role


async def require(
    session: AsyncSession, deployment_id: str, principal: Principal, need: Need
) -> tuple[Deployment, ShareRole]:
    """The deployment, if the principal's role allows `need`. A user with no role at all gets
    404, so deployments they may not see do not reveal that they exist."""
    deployment = await session.get(Deployment, deployment_id)
    role = await role_of(session, deployment_id, principal) if deployment else None
    if deployment is None or role is None:
        raise NotFoundError("deployment", deployment_id)
    if role not in ALLOWED[need]:
        raise PermissionDeniedError(
            f"your role on deployment '{deployment_id}' is {role}; "
            f"to {need} it you need one of {sorted(ALLOWED[need])}"
        )
    return deployment, role


async def list_roles(session: AsyncSession, deployment_id: str) -> list[DeploymentRole]:
    rows = await session.scalars(
        select(DeploymentRole)
        .where(DeploymentRole.deployment_id == deployment_id)
        .order_by(DeploymentRole.username)
    )
    return list(rows)


async def change_roles(
    session: AsyncSession, deployment_id: str, changes: list[RoleChange], actor: str
) -> list[DeploymentRole]:
    current = {row.username: row for row in await list_roles(session, deployment_id)}
    for index, change in enumerate(changes):
        if change.username in (c.username for c in changes[:index]):
            raise InvalidInputError.at(
                ("body", "roles", index, "username"), f"'{change.username}' is listed twice"
            )
    for change in changes:
        row = current.get(change.username)
        if change.role is None:
            if row is not None:
                await session.delete(row)
                del current[change.username]
        elif row is None:
            current[change.username] = DeploymentRole(
                deployment_id=deployment_id,
                username=change.username,
                role=change.role,
                granted_by=actor,
            )
            session.add(current[change.username])
        else:
            row.role, row.granted_by, row.granted_at = change.role, actor, utcnow()
    if not any(row.role == "owner" for row in current.values()):
        raise ConflictError("a deployment keeps at least one owner")
    await session.flush()
    summary = ", ".join(f"{c.username}={c.role or 'none'}" for c in changes)
    await add_event(session, deployment_id, "roles_changed", f"{summary} by {actor}", actor)
    return await list_roles(session, deployment_id)


async def create_token(
    session: AsyncSession, deployment_id: str, name: str, creator: str
) -> tuple[InvokeToken, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = InvokeToken(
        deployment_id=deployment_id,
        name=name,
        token_hash=hash_token(token),
        prefix=token[: len(TOKEN_PREFIX) + 6],
        created_by=creator,
    )
    session.add(row)
    await session.flush()
    await add_event(
        session, deployment_id, "token_created", f"token '{name}' created by {creator}", creator
    )
    return row, token


async def list_tokens(session: AsyncSession, deployment_id: str) -> list[InvokeToken]:
    rows = await session.scalars(
        select(InvokeToken)
        .where(InvokeToken.deployment_id == deployment_id)
        .order_by(InvokeToken.created_at)
    )
    return list(rows)


async def revoke_token(
    session: AsyncSession, deployment_id: str, token_id: str, actor: str
) -> InvokeToken:
    row = await session.get(InvokeToken, token_id)
    if row is None or row.deployment_id != deployment_id:
        raise NotFoundError("invoke token", token_id)
    if row.revoked_at is not None:
        raise ConflictError(f"invoke token '{token_id}' is already revoked")
    row.revoked_at = utcnow()
    await add_event(
        session, deployment_id, "token_revoked", f"token '{row.name}' revoked by {actor}", actor
    )
    return row
