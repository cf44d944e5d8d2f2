"""How deployments rows of the catalog look on the wire."""

from __future__ import annotations

from fastapi import Request

from api.presenters.rollouts import present_rollout
from api.presenters.workloads import invoke_url
from catalog.tables import (
    Deployment,
    DeploymentEvent,
    DeploymentRollout,
    DeploymentSwap,
    HealthCheck,
)
from models.common import UserRef
from models.deployments import (
    DeploymentEventPublic,
    DeploymentPublic,
    HealthCheckPublic,
    HealthPublic,
    SwapPublic,
)
from models.sharing import ShareRole
from models.workloads import WorkloadPublic
from services import deployments


def present_deployment(
    request: Request,
    row: Deployment,
    role: ShareRole | None,
    swap: DeploymentSwap | None,
    workload: WorkloadPublic | None = None,
    rollout: DeploymentRollout | None = None,
) -> DeploymentPublic:
    return DeploymentPublic(
        id=row.id,
        name=row.name,
        description=row.description,
        importance=row.importance,
        status=row.status,
        status_reason=_status_reason(row),
        workload_id=row.workload_id,
        endpoint=invoke_url(request, "deployments", row.id),
        max_body_bytes=row.max_body_bytes,
        health=HealthPublic(
            **deployments.health_settings(row).model_dump(),
            status=row.health_status,
            reason=row.health_reason,
        ),
        swap=present_swap(swap) if swap is not None else None,
        rollout=present_rollout(rollout) if rollout is not None else None,
        role=role,
        creator=UserRef(username=row.created_by),
        created_at=row.created_at,
        updated_at=row.updated_at,
        workload=workload,
    )


def _status_reason(row: Deployment) -> str | None:
    if row.status == "running":
        return None
    said = f"workload {row.workload_id} is {row.workload_status or 'gone'}"
    return f"{said}: {row.workload_status_reason}" if row.workload_status_reason else said


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
