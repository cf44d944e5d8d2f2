"""How deployments rows of the catalog look on the wire."""

from __future__ import annotations

from fastapi import Request

from api.presenters.workloads import invoke_url
from catalog.tables import (
    Deployment,
    DeploymentEvent,
    DeploymentSwap,
    HealthCheck,
)
from models.common import UserRef
from models.deployments import (
    DeploymentEventPublic,
    DeploymentPublic,
    HealthCheckPublic,
    SwapPublic,
)
from models.sharing import ShareRole
from models.workloads import WorkloadPublic
from services import deployments


def present_deployment(
    request: Request,
    row: Deployment,
    role: ShareRole | None,
    workload: WorkloadPublic | None = None,
) -> DeploymentPublic:
    return DeploymentPublic(
        id=row.id,
        name=row.name,
        description=row.description,
        importance=row.importance,
        status=row.status,
        status_reason=row.status_reason,
        workload_id=row.workload_id,
        endpoint=invoke_url(request, "deployments", row.id),
        max_body_bytes=row.max_body_bytes,
        health=deployments.health_settings(row),
        role=role,
        creator=UserRef(username=row.created_by),
        created_at=row.created_at,
        updated_at=row.updated_at,
        workload=workload,
    )


def present_swap(row: DeploymentSwap) -> SwapPublic:
    return SwapPublic(
        id=row.id,
        deployment_id=row.deployment_id,
        from_workload_id=row.from_workload_id,
        to_workload_id=row.to_workload_id,
        status=row.status,
        reason=row.reason,
        ready_timeout_seconds=int(row.options.get("readyTimeoutSeconds", 0)),
        keep_previous_seconds=int(row.options.get("keepPreviousSeconds", 0)),
        requested_by=UserRef(username=row.requested_by),
        created_at=row.created_at,
        switched_at=row.switched_at,
        finished_at=row.finished_at,
    )


def present_check(row: HealthCheck) -> HealthCheckPublic:
    return HealthCheckPublic(
        checked_at=row.checked_at,
        ok=row.ok,
        status_code=row.status_code,
        latency_ms=row.latency_ms,
        message=row.message,
    )


def present_deployment_event(row: DeploymentEvent) -> DeploymentEventPublic:
    return DeploymentEventPublic(
        id=row.id,
        deployment_id=row.deployment_id,
        type=row.type,
        message=row.message,
        details=row.details,
        actor=row.actor,
        timestamp=row.created_at,
    )
