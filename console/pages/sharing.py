"""Shared roles (`owner`, `user`, `consumer` per username) of any resource the API shares.

The API's `sharedRoles` routes have one shape for every resource, and so does this page part:
a resource kind joins by one entry in `SHARED`, naming the client's resource for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from client import AsyncClient
from client.operations import Async
from client.sharing import Sharing
from console.visit import ActionDep, see_other

router = APIRouter()
SHARED: dict[str, Callable[[AsyncClient], Sharing[Async]]] = {
    "artifacts": lambda api: api.artifacts,
    "collections": lambda api: api.collections,
    "workloads": lambda api: api.workloads,
    "deployments": lambda api: api.deployments,
    "secrets": lambda api: api.secrets,
}


@router.post("/{kind}/{resource_id}/roles")
async def change_role(action: ActionDep, kind: str, resource_id: str) -> Response:
    """Grant or change a user's role; an empty role removes it."""
    resource = SHARED.get(kind)
    if resource is None:
        return see_other(action.visit.request, action.back, error=f"{kind} cannot be shared")
    role: Any = action.get("role") or None
    username = action.get("username")
    await resource(action.visit.api).share(
        resource_id, {"roles": [{"username": username, "role": role}]}
    )
    done = f"{username} is now {role}." if role else f"{username} no longer has a role."
    return action.done(done)
