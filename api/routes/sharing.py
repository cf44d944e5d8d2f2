"""`/console/deployments/{id}/tokens/` and `.../sharedRoles/`: who may invoke and manage.

Owners manage both. Invoke tokens are shown once, stored hashed, and stop working within a
second of being revoked, on every gateway process.
"""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import Editor, SessionDep, Viewer
from api.params import DeploymentId, TokenId
from api.presenters.sharing import present_role, present_token
from models.deployments import (
    RolesUpdate,
    SharedRole,
    TokenCreate,
    TokenCreated,
    TokenPublic,
)
from services import deployment_access

router = APIRouter(prefix="/console/deployments", tags=["deployment access"])


@router.post(
    "/{deploymentId}/tokens/", status_code=status.HTTP_201_CREATED, summary="Create an invoke token"
)
async def create_token(
    session: SessionDep, principal: Editor, deployment_id: DeploymentId, data: TokenCreate
) -> TokenCreated:
    """A token that may invoke this deployment and nothing else. The response holds the token
    itself; it is stored hashed and never shown again."""
    await deployment_access.require(session, deployment_id, principal, "manage")
    row, token = await deployment_access.create_token(
        session, deployment_id, data.name, principal.username
    )
    return TokenCreated(**present_token(row).model_dump(), token=token)


@router.get("/{deploymentId}/tokens/", summary="List invoke tokens")
async def list_tokens(
    session: SessionDep, principal: Editor, deployment_id: DeploymentId
) -> list[TokenPublic]:
    """The deployment's tokens, revoked ones included; never their values."""
    await deployment_access.require(session, deployment_id, principal, "manage")
    return [
        present_token(row) for row in await deployment_access.list_tokens(session, deployment_id)
    ]


@router.delete("/{deploymentId}/tokens/{tokenId}/", summary="Revoke an invoke token")
async def revoke_token(
    session: SessionDep, principal: Editor, deployment_id: DeploymentId, token_id: TokenId
) -> TokenPublic:
    """Requests with the token get 401 within a second, on every gateway process."""
    await deployment_access.require(session, deployment_id, principal, "manage")
    return present_token(
        await deployment_access.revoke_token(session, deployment_id, token_id, principal.username)
    )


@router.get("/{deploymentId}/sharedRoles/", summary="List who may use a deployment")
async def list_roles(
    session: SessionDep, principal: Viewer, deployment_id: DeploymentId
) -> list[SharedRole]:
    """Users and their roles: `owner` (manage, share), `user` (read, invoke), `consumer`
    (invoke only)."""
    await deployment_access.require(session, deployment_id, principal, "read")
    return [present_role(row) for row in await deployment_access.list_roles(session, deployment_id)]


@router.patch("/{deploymentId}/sharedRoles/", summary="Share a deployment")
async def change_roles(
    session: SessionDep, principal: Editor, deployment_id: DeploymentId, data: RolesUpdate
) -> list[SharedRole]:
    """Grant, change or (with `role: null`) remove users' roles. A deployment keeps at least
    one owner (409 otherwise). Changes reach every gateway within a second."""
    await deployment_access.require(session, deployment_id, principal, "manage")
    rows = await deployment_access.change_roles(
        session, deployment_id, data.roles, principal.username
    )
    return [present_role(row) for row in rows]
