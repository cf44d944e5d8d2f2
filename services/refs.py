"""What is needed to reach, or restore, an entity's workflow: small values read from the catalog."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.tables import Deployment, Workload
from models.status import HealthStatus, WorkloadStatus


@dataclass(frozen=True)
class WorkloadRef:
    id: str
    status: WorkloadStatus
    # What the workflow's search attributes and summary say (docs/operations.md).
    name: str = ""
    artifact_id: str = ""
    owner: str = ""
    collection_id: str = ""  # of its artifact, when registered

    @classmethod
    def of(cls, row: Workload, collection_id: str | None = None) -> WorkloadRef:
        return cls(
            row.id, row.status, row.name, row.artifact_id, row.created_by, collection_id or ""
        )


@dataclass(frozen=True)
class DeploymentRef:
    id: str
    workload_id: str
    health_status: HealthStatus
    name: str = ""
    owner: str = ""

    @classmethod
    def of(cls, row: Deployment) -> DeploymentRef:
        return cls(row.id, row.workload_id, row.health_status, row.name, row.created_by)
