"""What is needed to reach, or restore, an entity's workflow: small values read from the catalog."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.tables import Deployment, Workload
from models.status import HealthStatus, WorkloadStatus


@dataclass(frozen=True)
class WorkloadRef:
    id: str
    status: WorkloadStatus

    @classmethod
    def of(cls, row: Workload) -> WorkloadRef:
        return cls(id=row.id, status=row.status)


@dataclass(frozen=True)
class DeploymentRef:
    id: str
    workload_id: str
    health_status: HealthStatus

    @classmethod
    def of(cls, row: Deployment) -> DeploymentRef:
        return cls(id=row.id, workload_id=row.workload_id, health_status=row.health_status)
