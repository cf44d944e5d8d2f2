"""`/console/deployments/{id}/tokens/`: invoke tokens, each good for one deployment only.

Owners manage them. Tokens are shown once, stored hashed, and stop working within a second of
being revoked, on every gateway process.
"""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import Editor, SessionDep
from api.params import DeploymentId, TokenId
from api.presenters.sharing import present_token
from models.deployments import TokenCreate, TokenCreated, TokenPublic
from services import access, deployment_access

router = APIRouter(prefix="/console/deployments", tags=["deployment access"])


@router.post(
    "/{deploymentId}/tokens/", status_code=status.HTTP_201_CREATED, summary="Create an invoke token"
)
async def create_token(
    session: SessionDep, principal: Editor, deployment_id: DeploymentId, data: TokenCreate
) -> TokenCreated:
    """A token that may invoke this deployment and nothing else. The response holds the token
    itself; it is stored hashed and never shown again."""
    await access.require(session, "deployment", deployment_id, principal, "manage")
    row, token = await deployment_access.create_token(
        session, deployment_id, data.name, principal.username
    )
    return TokenCreated(**present_token(row).model_dump(), token=token)


@router.get("/{deploymentId}/tokens/", summary="List invoke tokens")
async def list_tokens(
    session: SessionDep, principal: Editor, deployment_id: DeploymentId
) -> list[TokenPublic]:
    """The deployment's tokens, revoked ones included; never their values."""
    await access.require(session, "deployment", deployment_id, principal, "manage")
    return [
        present_token(row) for row in await deployment_access.list_tokens(session, deployment_id)
    ]


@router.delete("/{deploymentId}/tokens/{tokenId}/", summary="Revoke an invoke token")
async def revoke_token(
    session: SessionDep, principal: Editor, deployment_id: DeploymentId, token_id: TokenId
) -> TokenPublic:
    """Requests with the token get 401 within a second, on every gateway process."""
    await access.require(session, "deployment", deployment_id, principal, "manage")
    return present_token(
        await deployment_access.revoke_token(session, deployment_id, token_id, principal.username)
    )
