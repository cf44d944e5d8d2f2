"""What the catalog says about the fleet, read once per `/metrics` scrape.

Counts by status are for anyone; the series naming workloads and deployments (their status and
their replicas' restarts) only for a scrape that may see resource ids (`per_resource`), as on
the gateway. Every API replica reports the same catalog, so rules aggregate with `max`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, get_args

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import Artifact, Deployment, Workload, WorkloadReplica
from models.status import DeploymentStatus, HealthStatus, ReplicaState, WorkloadStatus

WORKLOAD_STATUSES: tuple[WorkloadStatus, ...] = (
    "submitted", "initializing", "running", "stopping", "stopped", "errored",
)  # fmt: skip
DEPLOYMENT_STATUSES: tuple[DeploymentStatus, ...] = get_args(DeploymentStatus)
HEALTH_STATUSES: tuple[HealthStatus, ...] = get_args(HealthStatus)
REPLICA_STATES: tuple[ReplicaState, ...] = (
    "pending", "starting", "running", "crashed", "terminated",
)  # fmt: skip


@dataclass(frozen=True)
class WorkloadRow:
    id: str
    name: str
    status: str
    artifact_id: str
    collection_id: str
    restarts: int
    replicas_ready: int
    replicas_desired: int  # the stored counts: the last scale, by hand or by the autoscaler


@dataclass(frozen=True)
class DeploymentRow:
    id: str
    name: str
    status: str
    health: str
    workload_id: str


@dataclass
class FleetSnapshot:
    workloads: list[WorkloadRow] = field(default_factory=list)
    deployments: list[DeploymentRow] = field(default_factory=list)
    replicas: dict[str, int] = field(default_factory=dict)  # state -> count


async def snapshot(session: AsyncSession) -> FleetSnapshot:
    restarts = (
        select(
            WorkloadReplica.workload_id,
            func.sum(WorkloadReplica.restarts).label("restarts"),
            func.sum(case((WorkloadReplica.ready, 1), else_=0)).label("ready"),
        )
        .group_by(WorkloadReplica.workload_id)
        .subquery()
    )
    workloads = await session.execute(
        select(
            Workload.id,
            Workload.name,
            Workload.status,
            Workload.artifact_id,
            Artifact.collection_id,
            restarts.c.restarts,
            restarts.c.ready,
            Workload.runtime,
        )
        .join(Artifact, Artifact.id == Workload.artifact_id)
        .outerjoin(restarts, restarts.c.workload_id == Workload.id)
    )
    deployments = await session.execute(
        select(
            Deployment.id,
            Deployment.name,
            Deployment.status,
            Deployment.health_status,
            Deployment.workload_id,
        )
    )
    replicas = await session.execute(
        select(WorkloadReplica.state, func.count()).group_by(WorkloadReplica.state)
    )
    return FleetSnapshot(
        workloads=[
            WorkloadRow(
                id,
                name,
                status,
                artifact,
                collection or "",
                int(count or 0),
                int(ready or 0),
                _desired(runtime),
            )
            for id, name, status, artifact, collection, count, ready, runtime in workloads
        ],
        deployments=[DeploymentRow(*row) for row in deployments],
        replicas={state: count for state, count in replicas},
    )


def _desired(runtime: dict[str, Any] | None) -> int:
    groups = (runtime or {}).get("containerGroups") or []
    return sum(int(group.get("replicaCount", 1)) for group in groups)


class FleetCollector(Collector):
    """The snapshot as Prometheus families (a collector for one scrape)."""

    def __init__(self, fleet: FleetSnapshot, *, per_resource: bool) -> None:
        self.fleet = fleet
        self.per_resource = per_resource

    def collect(self) -> Iterable[Metric]:
        fleet = self.fleet
        yield _counts(
            "wapi_workloads", "Workloads by status.", "status", WORKLOAD_STATUSES,
            [row.status for row in fleet.workloads],
        )  # fmt: skip
        yield _counts(
            "wapi_deployments", "Deployments by status.", "status", DEPLOYMENT_STATUSES,
            [row.status for row in fleet.deployments],
        )  # fmt: skip
        yield _counts(
            "wapi_deployments_health", "Deployments by health verdict.", "health",
            HEALTH_STATUSES, [row.health for row in fleet.deployments],
        )  # fmt: skip
        replicas = GaugeMetricFamily(
            "wapi_replicas", "Replicas by the state the runtime last reported.", labels=["state"]
        )
        for state in REPLICA_STATES:
            replicas.add_metric([state], fleet.replicas.get(state, 0))
        yield replicas
        if self.per_resource:
            yield from self._per_resource()

    def _per_resource(self) -> Iterable[Metric]:
        workload_status = GaugeMetricFamily(
            "wapi_workload_status",
            "1 for each workload, labelled with its current status and artifact.",
            labels=["workload", "name", "status", "artifact", "collection"],
        )
        restarts = CounterMetricFamily(
            "wapi_workload_restarts",
            "Container restarts of the workload's current replicas (reset on a new generation).",
            labels=["workload", "name"],
        )
        ready = GaugeMetricFamily(
            "wapi_workload_replicas_ready",
            "Replicas passing readiness.",
            labels=["workload", "name"],
        )
        desired = GaugeMetricFamily(
            "wapi_workload_replicas_desired",
            "Replicas the workload should run now (its autoscaler's latest decision, if any).",
            labels=["workload", "name"],
        )
        for row in self.fleet.workloads:
            desired.add_metric([row.id, row.name], row.replicas_desired)
            workload_status.add_metric(
                [row.id, row.name, row.status, row.artifact_id, row.collection_id], 1
            )
            restarts.add_metric([row.id, row.name], row.restarts)
            ready.add_metric([row.id, row.name], row.replicas_ready)
        deployment_status = GaugeMetricFamily(
            "wapi_deployment_status",
            "1 for each deployment, labelled with its lifecycle status and workload.",
            labels=["deployment", "name", "status", "workload"],
        )
        deployment_health = GaugeMetricFamily(
            "wapi_deployment_health",
            "1 for each deployment, labelled with the verdict of its health checks.",
            labels=["deployment", "name", "health"],
        )
        for deployment in self.fleet.deployments:
            deployment_status.add_metric(
                [deployment.id, deployment.name, deployment.status, deployment.workload_id], 1
            )
            deployment_health.add_metric([deployment.id, deployment.name, deployment.health], 1)
        yield from (workload_status, restarts, ready, desired, deployment_status, deployment_health)


def _counts(
    name: str, what: str, label: str, values: tuple[str, ...], found: list[str]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, what, labels=[label])
    for value in values:
        family.add_metric([value], found.count(value))
    return family
