"""`/apiKeys/`: admins create, list and revoke keys. A key's value is shown once."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from api.deps import Admin, ContextDep, PageDep, SessionDep, Viewer
from api.pagination import page_of
from api.params import KeyId
from api.presenters.api_keys import present_api_key
from models.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from models.common import Page
from services import api_keys

router = APIRouter(prefix="/apiKeys", tags=["API keys"])


@router.post("/", status_code=status.HTTP_201_CREATED, summary="Create an API key")
async def create_key(session: SessionDep, principal: Admin, data: ApiKeyCreate) -> ApiKeyCreated:
    """The response holds the key itself; it is stored hashed and never shown again."""
    row, key = await api_keys.create_key(session, data, principal.username)
    return ApiKeyCreated(**present_api_key(row).model_dump(), key=key)


@router.get("/", summary="List API keys")
async def list_keys(
    request: Request, session: SessionDep, _: Admin, page: PageDep
) -> Page[ApiKeyPublic]:
    """All keys, oldest first, revoked ones included; never their values."""
    rows, total = await api_keys.list_keys(session, page.offset, page.limit)
    return page_of(request, rows, total, page, present_api_key)


@router.get("/me/", summary="Who am I")
async def whoami(session: SessionDep, principal: Viewer) -> ApiKeyPublic:
    """The key this request was made with."""
    return present_api_key(await api_keys.get_key(session, principal.key_id))


@router.get("/{keyId}/", summary="Get an API key")
async def get_key(session: SessionDep, _: Admin, key_id: KeyId) -> ApiKeyPublic:
    """One key's metadata; never its value."""
    return present_api_key(await api_keys.get_key(session, key_id))


@router.delete("/{keyId}/", summary="Revoke an API key")
async def revoke_key(
    context: ContextDep, session: SessionDep, principal: Admin, key_id: KeyId
) -> ApiKeyPublic:
    """Requests with the key get 401 from now on here, and within a second on every other API
    process. The record is kept for the audit trail."""
    row = await api_keys.revoke_key(session, key_id, principal)
    await session.commit()
    context.credentials.forget_key(key_id)
    return present_api_key(row)
