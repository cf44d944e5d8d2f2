"""How api keys rows of the catalog look on the wire."""

from __future__ import annotations

from catalog.tables import ApiKey
from models.api_keys import ApiKeyPublic
from models.common import UserRef


def present_api_key(row: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic(
        id=row.id,
        name=row.name,
        username=row.username,
        role=row.role,
        prefix=row.prefix,
        creator=UserRef(username=row.created_by),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
