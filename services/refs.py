"""What is needed to reach, or restore, an entity's workflow: small values, no Temporal."""

from __future__ import annotations

from dataclasses import dataclass

from workflows.deployment_contract import DeploymentStatus
from workflows.workload_contract import WorkloadStatus


@dataclass(frozen=True)
class WorkloadRef:
    id: str
    status: WorkloadStatus
    replicas: dict[str, int]


@dataclass(frozen=True)
class DeploymentRef:
    id: str
    workload_id: str
    status: DeploymentStatus
