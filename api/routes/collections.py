"""`/registry/artifactCollections/`: version histories of registered artifacts (read-only)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import PageDep, SessionDep, Viewer
from api.pagination import page_of
from api.params import CollectionId, Search
from api.routes.artifacts import present as present_artifact
from catalog.tables import ArtifactCollection
from models.artifacts import ArtifactPublic, CollectionPublic
from models.common import Page, UserRef
from services import collections

router = APIRouter(prefix="/registry/artifactCollections", tags=["artifact collections"])


def present(row: ArtifactCollection) -> CollectionPublic:
    return CollectionPublic(
        id=row.id,
        name=row.name,
        type=row.type,
        # Registered versions are never deleted, so the count is the last number handed out.
        last_version_number=row.last_version,
        num_artifacts=row.last_version,
        creator=UserRef(username=row.created_by),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("/", summary="List artifact collections")
async def list_collections(
    request: Request, session: SessionDep, _: Viewer, page: PageDep, search: Search = None
) -> Page[CollectionPublic]:
    """Newest first unless `orderBy` (name, createdAt, updatedAt) says otherwise."""
    rows, total = await collections.list_collections(session, search, page)
    return page_of(request, rows, total, page, present)


@router.get("/{collectionId}/", summary="Get an artifact collection")
async def get_collection(
    session: SessionDep, _: Viewer, collection_id: CollectionId
) -> CollectionPublic:
    """One collection, with the number of its newest version."""
    return present(await collections.get_collection(session, collection_id))


@router.get("/{collectionId}/versions/", summary="List the versions in a collection")
async def list_versions(
    request: Request, session: SessionDep, _: Viewer, page: PageDep, collection_id: CollectionId
) -> Page[ArtifactPublic]:
    """Registered artifacts of the collection, v1 first (`orderBy=-version` for newest first)."""
    rows, total = await collections.list_versions(session, collection_id, page)
    return page_of(request, rows, total, page, present_artifact)
