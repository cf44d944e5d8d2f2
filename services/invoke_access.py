"""Who may invoke a workload or a deployment.

The invoke gateway applies the same rules as the management API (`services/access.py`), in a
shape it can cache: the catalog lookup depends only on (kind, id, username), and the decision
on top of it is a pure function of the looked-up role and the caller's key.

    role = await invoke_role(session, "workload", workload_id, principal.username)
    check_invoke(principal, "workload", role)   # raises PermissionDeniedError

Cache `invoke_role` answers per (kind, id, username) for at most half a second: sharing
changes and revocations must reach every gateway within a second. Invoke tokens are checked
by the gateway itself (`deployment_access.hash_token`); a token's deployment is its only grant.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from models.sharing import ShareRole
from services import access
from services.api_keys import Principal
from services.errors import PermissionDeniedError

InvokeKind = Literal["workload", "deployment"]


async def invoke_role(
    session: AsyncSession, kind: InvokeKind, resource_id: str, username: str
) -> ShareRole | None:
    """The user's role on the workload or deployment, direct or inherited (owner or user on a
    deployment counts as user on the workload it routes to); None if they have none. A read of
    the catalog only: cacheable by (kind, resource_id, username)."""
    return await access.role_on(session, kind, resource_id, username)


def check_invoke(principal: Principal, kind: InvokeKind, role: ShareRole | None) -> None:
    """Any role allows invoking (it is the `use` every role has, and every key role may use);
    admins invoke everything. Whether the resource exists is not revealed: a caller without a
    role gets the same 403 either way."""
    if principal.role == "admin" or role in access.ALLOWED["use"]:
        return
    raise PermissionDeniedError(f"you have no role on this {kind}; an owner can share it with you")
