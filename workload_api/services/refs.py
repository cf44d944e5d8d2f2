"""What is needed to reach, or restore, an entity's workflow: small values, no Temporal."""

from __future__ import annotations

from dataclasses import dataclass

from workload_api.payloads.deployments import DeploymentStatus
from workload_api.payloads.workloads import WorkloadStatus


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
