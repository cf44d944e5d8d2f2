"""`/registry/`: artifacts (drafts and registered versions) and artifact collections."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from client.operations import Mode, listing, route
from client.sharing import Sharing
from models.artifacts import (
    ArtifactClone,
    ArtifactCreate,
    ArtifactPublic,
    ArtifactReplace,
    ArtifactUpdate,
    CollectionPublic,
)
from models.common import Page
from models.spec import ArtifactType
from models.status import ArtifactStatus

Body = Mapping[str, Any]
IF_MATCH = {"if_match": "If-Match"}


class Artifacts(Sharing[Mode]):
    path = "/api/v2/registry/artifacts/"
    id_name = "artifactId"

    @route("POST", "")
    def create(self, body: ArtifactCreate | Body) -> ArtifactPublic:
        """A draft, or with `status: registered` a new version (of `collectionId`, or v1)."""

    @listing("GET", "")
    def list(
        self,
        search: str | None = None,
        type: ArtifactType | None = None,
        status: ArtifactStatus | None = None,
        collection_id: str | None = None,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
    ) -> Page[ArtifactPublic]: ...

    @route("GET", "{id}/")
    def get(self, artifact_id: str) -> ArtifactPublic: ...

    @route("PATCH", "{id}/", headers=IF_MATCH)
    def update(
        self, artifact_id: str, body: ArtifactUpdate | Body, if_match: str | None = None
    ) -> ArtifactPublic:
        """Change fields of a draft; registered artifacts answer 409."""

    @route("PATCH", "{id}/", headers=IF_MATCH, body={"status": "registered"})
    def register(self, artifact_id: str, if_match: str | None = None) -> ArtifactPublic:
        """Register a draft as the next version of its collection."""

    @route("PUT", "{id}/", headers=IF_MATCH)
    def replace(
        self, artifact_id: str, body: ArtifactReplace | Body, if_match: str | None = None
    ) -> ArtifactPublic: ...

    @route("DELETE", "{id}/", headers=IF_MATCH)
    def delete(self, artifact_id: str, if_match: str | None = None) -> None: ...

    @route("POST", "{id}/clone/")
    def clone(self, artifact_id: str, body: ArtifactClone | Body | None = None) -> ArtifactPublic:
        """A new draft with the same fields, registering into the same collection."""


class Collections(Sharing[Mode]):
    path = "/api/v2/registry/artifactCollections/"
    id_name = "collectionId"

    @listing("GET", "")
    def list(
        self,
        search: str | None = None,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
    ) -> Page[CollectionPublic]: ...

    @route("GET", "{id}/")
    def get(self, collection_id: str) -> CollectionPublic: ...

    @listing("GET", "{id}/versions/")
    def versions(
        self,
        collection_id: str,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
    ) -> Page[ArtifactPublic]:
        """Registered versions, newest first unless `order_by`."""
