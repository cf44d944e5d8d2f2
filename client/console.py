"""`/console/`: workloads and deployments, their lifecycle actions, telemetry and invoke URLs.

The routes are declared once (`Workloads`, `Deployments`); the `Sync...`/`Async...` classes add
the helpers that poll: `wait_until`, `wait_for_swap` and `watch_events`.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from client.operations import Mode, listing, route
from client.raw_routes import invoking, streaming
from client.sharing import Sharing
from models.common import Page
from models.deployments import (
    DeploymentCreate,
    DeploymentEventPublic,
    DeploymentHealth,
    DeploymentPublic,
    DeploymentUpdate,
    SwapCreate,
    SwapPublic,
    TokenCreate,
    TokenCreated,
    TokenPublic,
)
from models.replacements import ReplacementCreate, ReplacementPublic
from models.rollouts import RolloutCreate, RolloutPromote, RolloutPublic
from models.stats import DeploymentStats, Resolution
from models.status import DeploymentStatus, HealthStatus, WorkloadStatus
from models.workloads import (
    Importance,
    ReplicaPublic,
    WorkloadCreate,
    WorkloadEventPublic,
    WorkloadOperation,
    WorkloadPublic,
    WorkloadScaling,
    WorkloadUpdate,
)

Body = Mapping[str, Any]
LogFormat = Literal["text", "json"]


class Workloads(Sharing[Mode]):
    path = "/api/v2/console/workloads/"
    id_name = "workloadId"

    @route("POST", "")
    def create(self, body: WorkloadCreate | Body) -> WorkloadPublic:
        """Create and start; it answers at once with status `submitted`."""

    @listing("GET", "")
    def list(
        self,
        search: str | None = None,
        status: WorkloadStatus | None = None,
        importance: Importance | None = None,
        artifact_id: str | None = None,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
    ) -> Page[WorkloadPublic]: ...

    @route("GET", "{id}/")
    def get(
        self,
        workload_id: str,
        wait_for_status: Sequence[WorkloadStatus] | None = None,
        wait_seconds: float | None = None,
    ) -> WorkloadPublic:
        """With `wait_for_status`, the server answers once the status is one of them, or after
        `wait_seconds` (default 20, at most 30)."""

    @route("PATCH", "{id}/")
    def update(self, workload_id: str, body: WorkloadUpdate | Body) -> WorkloadPublic:
        """Metadata at once; replica counts scale live; other runtime changes at next start."""

    @route("DELETE", "{id}/")
    def delete(self, workload_id: str) -> None: ...

    @route("POST", "{id}/start/")
    def start(self, workload_id: str) -> WorkloadOperation: ...

    @route("POST", "{id}/stop/")
    def stop(self, workload_id: str) -> WorkloadOperation: ...

    @listing("GET", "{id}/events/")
    def events(
        self,
        workload_id: str,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
    ) -> Page[WorkloadEventPublic]:
        """Oldest first unless `order_by="-timestamp"`."""

    @route("GET", "{id}/replicas/")
    def replicas(self, workload_id: str) -> builtins.list[ReplicaPublic]: ...

    @route("GET", "{id}/scaling/")
    def scaling(self, workload_id: str) -> WorkloadScaling:
        """Desired against ready replicas per group, and the latest change's reason."""

    @route("GET", "{id}/logs/")
    def logs(
        self,
        workload_id: str,
        tail: int | None = None,
        since: datetime | None = None,
        replica: str | None = None,
        container: str | None = None,
        format: LogFormat | None = None,
    ) -> str:
        """The last `tail` lines (100 by default) of every container."""

    @streaming("{id}/logs/")
    def follow_logs(
        self,
        workload_id: str,
        tail: int | None = None,
        since: datetime | None = None,
        replica: str | None = None,
        container: str | None = None,
        format: LogFormat | None = None,
        follow: bool = True,
    ) -> Iterator[str]:
        """Log lines as containers write them, until the iterator is closed."""

    @route("POST", "{id}/replacement/")
    def replace(self, workload_id: str, body: ReplacementCreate | Body) -> ReplacementPublic:
        """Move it onto another artifact in place (same id and endpoint), step by step."""

    @route("GET", "{id}/replacement/")
    def replacement(self, workload_id: str) -> ReplacementPublic:
        """The replacement in progress (404 when none is)."""

    @route("DELETE", "{id}/replacement/")
    def cancel_replacement(self, workload_id: str) -> ReplacementPublic:
        """Every call back on the old version; the new one removed."""

    invoke = invoking("/api/v2/endpoints/workloads/{workloadId}/{path}")


class Deployments(Sharing[Mode]):
    path = "/api/v2/console/deployments/"
    id_name = "deploymentId"

    @route("POST", "")
    def create(self, body: DeploymentCreate | Body) -> DeploymentPublic: ...

    @listing("GET", "")
    def list(
        self,
        search: str | None = None,
        status: DeploymentStatus | None = None,
        health_status: HealthStatus | None = None,
        workload_id: str | None = None,
        wid: list[str] | None = None,
        workload_details: bool | None = None,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
    ) -> Page[DeploymentPublic]:
        """`wid`: only those in front of these workloads; `workload_details`: each with its
        `workload`."""

    @route("GET", "{id}/")
    def get(self, deployment_id: str) -> DeploymentPublic: ...

    @route("PATCH", "{id}/")
    def update(self, deployment_id: str, body: DeploymentUpdate | Body) -> DeploymentPublic: ...

    @route("DELETE", "{id}/")
    def delete(self, deployment_id: str) -> None:
        """The workload keeps running."""

    @route("POST", "{id}/swap/")
    def swap(self, deployment_id: str, body: SwapCreate | Body) -> SwapPublic:
        """Move traffic to another registered workload without dropping a request."""

    @route("DELETE", "{id}/swap/")
    def cancel_swap(self, deployment_id: str) -> SwapPublic: ...

    @listing("GET", "{id}/swaps/")
    def swaps(
        self,
        deployment_id: str,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
    ) -> Page[SwapPublic]:
        """Newest first."""

    @route("POST", "{id}/rollouts/")
    def rollout(self, deployment_id: str, body: RolloutCreate | Body) -> RolloutPublic:
        """Move traffic to another registered workload step by step (weights, pauses,
        analyses); it answers with status `starting`."""

    @listing("GET", "{id}/rollouts/")
    def rollouts(
        self,
        deployment_id: str,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
    ) -> Page[RolloutPublic]:
        """Newest first."""

    @route("GET", "{id}/rollouts/{rolloutId}/")
    def get_rollout(self, deployment_id: str, rollout_id: str) -> RolloutPublic: ...

    @route("POST", "{id}/rollouts/{rolloutId}/promote/")
    def promote_rollout(
        self, deployment_id: str, rollout_id: str, body: RolloutPromote | Body | None = None
    ) -> RolloutPublic:
        """On to the next step; with `{"full": true}`, straight to all traffic."""

    @route("POST", "{id}/rollouts/{rolloutId}/pause/")
    def pause_rollout(self, deployment_id: str, rollout_id: str) -> RolloutPublic: ...

    @route("POST", "{id}/rollouts/{rolloutId}/resume/")
    def resume_rollout(self, deployment_id: str, rollout_id: str) -> RolloutPublic: ...

    @route("POST", "{id}/rollouts/{rolloutId}/abort/")
    def abort_rollout(self, deployment_id: str, rollout_id: str) -> RolloutPublic:
        """All traffic back on the stable workload; answered once it is."""

    @route("GET", "{id}/health/")
    def health(self, deployment_id: str, recent: int | None = None) -> DeploymentHealth: ...

    @route("GET", "{id}/stats/")
    def stats(
        self,
        deployment_id: str,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        resolution: Resolution | None = None,
    ) -> DeploymentStats:
        """Requests, errors, latency and health checks per bucket (the last hour by default)."""

    @listing("GET", "{id}/events/")
    def events(
        self,
        deployment_id: str,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
    ) -> Page[DeploymentEventPublic]: ...

    @route("GET", "{id}/tokens/")
    def tokens(self, deployment_id: str) -> builtins.list[TokenPublic]: ...

    @route("POST", "{id}/tokens/")
    def create_token(self, deployment_id: str, body: TokenCreate | Body) -> TokenCreated:
        """The answer holds the token itself, shown this once."""

    @route("DELETE", "{id}/tokens/{tokenId}/")
    def revoke_token(self, deployment_id: str, token_id: str) -> TokenPublic: ...

    invoke = invoking("/api/v2/endpoints/deployments/{deploymentId}/{path}")
