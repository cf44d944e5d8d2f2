"""`/registry/artifactCollections/`: version histories of registered artifacts (read-only)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import PageDep, SessionDep, Viewer
from api.pagination import page_of
from api.params import CollectionId, Search
from api.presenters.artifacts import present_artifact
from api.presenters.collections import present_collection
from models.artifacts import ArtifactPublic, CollectionPublic
from models.common import Page
from services import access, collections

router = APIRouter(prefix="/registry/artifactCollections", tags=["artifact collections"])


@router.get("/", summary="List artifact collections")
async def list_collections(
    request: Request, session: SessionDep, principal: Viewer, page: PageDep, search: Search = None
) -> Page[CollectionPublic]:
    """The collections you may read, newest first unless `orderBy` (name, createdAt,
    updatedAt) says otherwise."""
    rows, total = await collections.list_collections(session, search, page, principal)
    return page_of(request, rows, total, page, present_collection)


@router.get("/{collectionId}/", summary="Get an artifact collection")
async def get_collection(
    session: SessionDep, principal: Viewer, collection_id: CollectionId
) -> CollectionPublic:
    """One collection, with the number of its newest version."""
    await access.require(session, "collection", collection_id, principal, "read")
    return present_collection(await collections.get_collection(session, collection_id))


@router.get("/{collectionId}/versions/", summary="List the versions in a collection")
async def list_versions(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    page: PageDep,
    collection_id: CollectionId,
) -> Page[ArtifactPublic]:
    """Registered artifacts of the collection, v1 first (`orderBy=-version` for newest first).
    A role on the collection is the same role on each of its versions."""
    await access.require(session, "collection", collection_id, principal, "read")
    rows, total = await collections.list_versions(session, collection_id, page)
    return page_of(request, rows, total, page, present_artifact)
