"""How artifacts rows of the catalog look on the wire."""

from __future__ import annotations

from catalog.tables import Artifact
from models.artifacts import (
    ArtifactPublic,
)
from models.common import UserRef
from models.spec import ArtifactSpec


def present_artifact(row: Artifact) -> ArtifactPublic:
    return ArtifactPublic(
        id=row.id,
        name=row.name,
        description=row.description,
        type=row.type,
        status=row.status,
        version=row.version,
        collection_id=row.collection_id,
        spec=ArtifactSpec.model_validate(row.spec),
        creator=UserRef(username=row.created_by),
        created_at=row.created_at,
        updated_at=row.updated_at,
        registered_at=row.registered_at,
    )
