"""How sharing rows and invoke tokens of the catalog look on the wire."""

from __future__ import annotations

from catalog.tables import InvokeToken, ResourceRole
from models.common import UserRef
from models.deployments import TokenPublic
from models.sharing import SharedRole


def present_token(row: InvokeToken) -> TokenPublic:
    return TokenPublic(
        id=row.id,
        deployment_id=row.deployment_id,
        name=row.name,
        prefix=row.prefix,
        creator=UserRef(username=row.created_by),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def present_role(row: ResourceRole) -> SharedRole:
    return SharedRole(
        id=row.username,
        name=row.username,
        username=row.username,
        role=row.role,
        share_recipient_type="user",
        granted_by=row.granted_by,
        granted_at=row.granted_at,
    )
