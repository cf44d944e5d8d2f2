"""How secrets rows of the catalog look on the wire."""

from __future__ import annotations

from catalog.tables import Secret
from models.common import UserRef
from models.secrets import SecretPublic


def present_secret(row: Secret) -> SecretPublic:
    return SecretPublic(
        id=row.id,
        name=row.name,
        description=row.description,
        version=row.version,
        creator=UserRef(username=row.created_by),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
