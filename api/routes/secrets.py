"""`/secrets/`: values go in encrypted and never come out; workloads reference them by id.

Owners rotate, share and delete a secret; users read its metadata and reference it; consumers
only reference it (in an artifact or a workload's runtime).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, status

from api.deps import ContextDep, Editor, PageDep, SessionDep, Viewer
from api.pagination import page_of
from api.presenters.secrets import present_secret
from models.common import Page
from models.secrets import SecretCreate, SecretPublic, SecretRotate
from services import access, secrets
from services.errors import UnavailableError
from services.keyring import Keyring, KeyringError, load_keyring

log = logging.getLogger(__name__)

router = APIRouter(prefix="/secrets", tags=["secrets"])

SecretId = Annotated[
    str,
    Path(
        alias="secretId",
        description="A secret id.",
        pattern=r"^[A-Za-z0-9_-]+$",
        max_length=64,
        examples=["65f1c0ffee65f1c0ffee65f1"],
    ),
]
NameSearch = Annotated[
    str | None,
    Query(
        max_length=100,
        pattern=r"^[^\x00]*$",
        description="Case-insensitive text to look for in names and ids.",
    ),
]


async def get_keyring(request: Request, context: ContextDep) -> Keyring:
    """The key is read (or, for the embedded stack, created) on first use, then kept."""
    keyring: Keyring | None = getattr(request.app.state, "secrets_keyring", None)
    if keyring is None:
        try:
            keyring = await asyncio.to_thread(load_keyring, context.settings)
        except KeyringError as error:  # names the setting or file, never a key
            log.error("the secrets key is not usable", extra={"error": str(error)})
            raise UnavailableError(f"secrets are not available: {error}") from None
        request.app.state.secrets_keyring = keyring
    return keyring


KeyringDep = Annotated[Keyring, Depends(get_keyring)]


@router.post("/", status_code=status.HTTP_201_CREATED, summary="Create a secret")
async def create_secret(
    session: SessionDep,
    principal: Editor,
    keyring: KeyringDep,
    response: Response,
    data: Annotated[
        SecretCreate,
        Body(
            openapi_examples={
                "apiKey": {
                    "summary": "An API key for a model provider",
                    "value": {
                        "name": "openai-api-key",
                        "description": "used by the support agent",
                        "value": "example-token-0123456789abcdef",
                    },
                }
            }
        ),
    ],
) -> SecretPublic:
    """Store a value encrypted. The answer holds its metadata only: the value is never returned.
    Reference it from an environment variable as
    `{"name": "API_KEY", "source": "secret", "secretId": "<id>"}`. A taken name answers 409."""
    row = await secrets.create_secret(session, data, principal, keyring)
    response.headers["Location"] = f"/api/v2/secrets/{row.id}/"
    return present_secret(row)


@router.get("/", summary="List secrets")
async def list_secrets(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    page: PageDep,
    search: NameSearch = None,
) -> Page[SecretPublic]:
    """Metadata of the secrets you may read, by name unless `orderBy` (name, createdAt,
    updatedAt, version); never a value."""
    rows, total = await secrets.list_secrets(session, search, page, principal)
    return page_of(request, rows, total, page, present_secret)


@router.get("/{secretId}/", summary="Get a secret")
async def get_secret(session: SessionDep, principal: Viewer, secret_id: SecretId) -> SecretPublic:
    """One secret's metadata; never its value."""
    await access.require(session, "secret", secret_id, principal, "read")
    return present_secret(await secrets.get_secret(session, secret_id))


@router.post("/{secretId}/rotate/", summary="Rotate a secret")
async def rotate_secret(
    session: SessionDep,
    principal: Editor,
    keyring: KeyringDep,
    secret_id: SecretId,
    data: Annotated[
        SecretRotate,
        Body(openapi_examples={"rotate": {"value": {"value": "example-token-fedcba9876543210"}}}),
    ],
) -> SecretPublic:
    """Replace the value; `version` goes up by one. Running workloads keep the value they
    started with and get the new one at their next start. Owners only."""
    await access.require(session, "secret", secret_id, principal, "manage")
    return present_secret(await secrets.rotate_secret(session, secret_id, data, keyring))


@router.delete("/{secretId}/", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a secret")
async def delete_secret(session: SessionDep, principal: Editor, secret_id: SecretId) -> None:
    """Delete a secret and its value (owners only). While an artifact or a workload's runtime
    references it, the answer is 409 naming them."""
    await access.require(session, "secret", secret_id, principal, "manage")
    await secrets.delete_secret(session, secret_id)
