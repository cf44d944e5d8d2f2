"""`.../{id}/sharedRoles/`: who may use a resource, on every kind of resource that has owners."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from client.operations import Mode, Resource, listing, route
from models.common import Page
from models.sharing import RolesUpdate, SharedRole


class Sharing(Resource[Mode]):
    """`owner`, `user` or `consumer` per username (docs/access.md)."""

    @listing("GET", "{id}/sharedRoles/")
    def roles(
        self,
        resource_id: str,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
    ) -> Page[SharedRole]:
        """Who holds which role on the resource."""

    @route("PATCH", "{id}/sharedRoles/")
    def share(self, resource_id: str, body: RolesUpdate | Mapping[str, Any]) -> None:
        """Grant, change or (with `role: None`) remove roles; one owner always stays."""
