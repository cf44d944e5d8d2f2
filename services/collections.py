"""Artifact collections: the ordered version history of registered artifacts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import Artifact, ArtifactCollection
from services import access
from services.api_keys import Principal
from services.errors import NotFoundError
from services.listing import PageRequest, fetch_page, matching

SORT_KEYS = {
    "name": ArtifactCollection.name,
    "createdAt": ArtifactCollection.created_at,
    "updatedAt": ArtifactCollection.updated_at,
}


async def get_collection(session: AsyncSession, collection_id: str) -> ArtifactCollection:
    collection = await session.get(ArtifactCollection, collection_id)
    if collection is None:
        raise NotFoundError("artifact collection", collection_id)
    return collection


async def list_collections(
    session: AsyncSession, search: str | None, page: PageRequest, principal: Principal
) -> tuple[list[ArtifactCollection], int]:
    """The collections the caller may read."""
    statement = select(ArtifactCollection)
    visible = access.readable("collection", ArtifactCollection.id, principal)
    if visible is not None:
        statement = statement.where(visible)
    if search:
        statement = statement.where(
            matching(search, ArtifactCollection.name, ArtifactCollection.id)
        )
    return await fetch_page(
        session,
        statement,
        page,
        sort_keys=SORT_KEYS,
        default_order=[ArtifactCollection.created_at.desc()],
        tiebreak=ArtifactCollection.id,
    )


async def list_versions(
    session: AsyncSession, collection_id: str, page: PageRequest
) -> tuple[list[Artifact], int]:
    await get_collection(session, collection_id)
    statement = select(Artifact).where(
        Artifact.collection_id == collection_id, Artifact.status == "registered"
    )
    return await fetch_page(
        session,
        statement,
        page,
        sort_keys={"version": Artifact.version},
        default_order=[Artifact.version.asc()],
        tiebreak=Artifact.id,
    )
