"""How collections rows of the catalog look on the wire."""

from __future__ import annotations

from catalog.tables import ArtifactCollection
from models.artifacts import CollectionPublic
from models.common import UserRef


def present_collection(row: ArtifactCollection) -> CollectionPublic:
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
