"""Secrets, resource bundles, API keys, the audit log and the unauthenticated service routes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from client.operations import Mode, Resource, listing, route
from client.sharing import Sharing
from models.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from models.audit import AuditEventPublic, AuditVerification
from models.bundles import ResourceBundle
from models.common import Page
from models.secrets import SecretCreate, SecretPublic, SecretRotate

Body = Mapping[str, Any]


class Secrets(Sharing[Mode]):
    path = "/api/v2/secrets/"
    id_name = "secretId"

    @route("POST", "")
    def create(self, body: SecretCreate | Body) -> SecretPublic: ...

    @listing("GET", "")
    def list(
        self,
        search: str | None = None,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
    ) -> Page[SecretPublic]: ...

    @route("GET", "{id}/")
    def get(self, secret_id: str) -> SecretPublic: ...

    @route("POST", "{id}/rotate/")
    def rotate(self, secret_id: str, body: SecretRotate | Body) -> SecretPublic:
        """A new value; workloads get it at their next start."""

    @route("DELETE", "{id}/")
    def delete(self, secret_id: str) -> None: ...


class Bundles(Resource[Mode]):
    path = "/api/v2/resourceBundles/"
    id_name = "bundleId"

    @listing("GET", "")
    def list(
        self, offset: int | None = None, limit: int | None = None, order_by: str | None = None
    ) -> Page[ResourceBundle]: ...

    @route("GET", "{id}/")
    def get(self, bundle_id: str) -> ResourceBundle: ...

    @listing("GET", "/api/v2/mlops/compute/bundles/")
    def list_compute(
        self, offset: int | None = None, limit: int | None = None, order_by: str | None = None
    ) -> Page[ResourceBundle]:
        """The same list, at the path the public Workload API's clients use."""


class ApiKeys(Resource[Mode]):
    path = "/api/v2/apiKeys/"
    id_name = "keyId"

    @route("POST", "")
    def create(self, body: ApiKeyCreate | Body) -> ApiKeyCreated:
        """The answer holds the key itself, shown this once."""

    @listing("GET", "")
    def list(
        self, offset: int | None = None, limit: int | None = None, order_by: str | None = None
    ) -> Page[ApiKeyPublic]: ...

    @route("GET", "me/")
    def me(self) -> ApiKeyPublic:
        """The key this client uses."""

    @route("GET", "{id}/")
    def get(self, key_id: str) -> ApiKeyPublic: ...

    @route("DELETE", "{id}/")
    def revoke(self, key_id: str) -> ApiKeyPublic: ...


class Audit(Resource[Mode]):
    path = "/api/v2/auditEvents/"

    @listing("GET", "")
    def list(
        self,
        actor: str | None = None,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
    ) -> Page[AuditEventPublic]: ...

    @route("GET", "verify/")
    def verify(
        self, anchor_seq: int | None = None, anchor_hash: str | None = None
    ) -> AuditVerification:
        """Walk the whole chain; give an earlier run's head to also detect truncation."""


class Service(Resource[Mode]):
    """The routes without authentication."""

    @route("GET", "/healthz")
    def health(self) -> dict[str, Any]: ...

    @route("GET", "/readyz", ok=(503,))
    def ready(self) -> dict[str, Any]:
        """`status` is `ready` when the catalog and Temporal answer; `checks` says which not."""

    @route("GET", "/metrics")
    def metrics(self) -> str:
        """Prometheus text format."""
