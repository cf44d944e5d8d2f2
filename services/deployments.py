"""Deployments in the catalog: creation rules, reads, events, swaps and health history.

Why one module of this length: every catalog read and write of a deployment and its swaps,
events and checks, which the routes and the workflow's activities share.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import (
    Artifact,
    Deployment,
    DeploymentEvent,
    DeploymentRollout,
    DeploymentSwap,
    HealthCheck,
    Workload,
    utcnow,
)
from models.deployments import DeploymentCreate, DeploymentUpdate, HealthSettings
from models.status import ROLLOUT_ACTIVE, HealthStatus
from services import access, events, sharing, traffic
from services.api_keys import Principal
from services.errors import ConflictError
from services.listing import PageRequest, fetch_page, matching

HEALTH_HISTORY = 500  # checks kept per deployment
SORT_KEYS = {
    "name": Deployment.name,
    "createdAt": Deployment.created_at,
    "updatedAt": Deployment.updated_at,
    "status": Deployment.status,
    "healthStatus": Deployment.health_status,
}
# A swap is in progress until it ends: traffic has not moved yet, or the previous workload is
# still kept for its rollback window.
SWAP_IN_PROGRESS = ("starting", "switched")


async def deployable_workload(
    session: AsyncSession,
    workload_id: str,
    principal: Principal,
    *,
    loc: tuple[str, ...],
    deployment_id: str | None = None,
) -> Workload:
    """The workload, if it may be deployed: the caller owns it (the deployment will start and
    stop it), its artifact is registered, and no other deployment routes to it or rolls out
    to it."""
    await access.require_reference(session, "workload", workload_id, principal, "manage", loc)
    workload = await session.get(Workload, workload_id)
    assert workload is not None  # access.require found it
    artifact = await session.get(Artifact, workload.artifact_id)
    if artifact is None or artifact.status != "registered":
        raise ConflictError(
            f"workload '{workload_id}' runs a draft artifact; only a workload whose artifact is "
            "registered can be deployed (register the artifact first)"
        )
    elsewhere = await session.scalar(
        select(Deployment.id).where(
            Deployment.workload_id == workload_id, Deployment.id != deployment_id
        )
    )
    if elsewhere:
        raise ConflictError(
            f"workload '{workload_id}' is already deployed by deployment '{elsewhere}'"
        )
    rolling_out = await session.scalar(
        select(DeploymentRollout.deployment_id).where(
            DeploymentRollout.candidate_workload_id == workload_id,
            DeploymentRollout.status.in_(ROLLOUT_ACTIVE),
            DeploymentRollout.deployment_id != deployment_id,
        )
    )
    if rolling_out:
        raise ConflictError(
            f"workload '{workload_id}' is the candidate of a rollout of deployment '{rolling_out}'"
        )
    return workload


async def create_deployment(
    session: AsyncSession, data: DeploymentCreate, principal: Principal
) -> Deployment:
    """Write a deployment in front of a workload the caller owns; the caller owns it."""
    creator = principal.username
    workload = await deployable_workload(
        session, data.workload_id, principal, loc=("body", "workloadId")
    )
    deployment = Deployment(
        name=data.name,
        description=data.description,
        importance=data.importance,
        workload_id=workload.id,
        health_status="unknown",
        health_reason="not checked yet",
        health=data.health.model_dump(mode="json"),
        max_body_bytes=data.max_body_bytes,
        created_by=creator,
    )
    session.add(deployment)
    await session.flush()
    sharing.grant_owner(session, "deployment", deployment.id, creator)
    await add_event(session, deployment.id, "created", f"created by {creator}", creator)
    await session.refresh(deployment, ["status", "workload_status", "workload_status_reason"])
    return deployment


async def list_deployments(
    session: AsyncSession,
    page: PageRequest,
    *,
    search: str | None,
    status: str | None,
    workload_id: str | None,
    principal: Principal,
    workload_ids: list[str] | None = None,
    health_status: str | None = None,
) -> tuple[list[Deployment], int]:
    """The deployments the caller may read (in front of one of `workload_ids`, if given)."""
    statement = select(Deployment)
    if search:
        statement = statement.where(
            matching(search, Deployment.name, Deployment.description, Deployment.id)
        )
    if status:
        statement = statement.where(Deployment.status == status)
    if health_status:
        statement = statement.where(Deployment.health_status == health_status)
    if workload_id:
        statement = statement.where(Deployment.workload_id == workload_id)
    if workload_ids:
        statement = statement.where(Deployment.workload_id.in_(workload_ids))
    visible = access.readable("deployment", Deployment.id, principal)
    if visible is not None:
        statement = statement.where(visible)
    return await fetch_page(
        session,
        statement,
        page,
        sort_keys=SORT_KEYS,
        default_order=[Deployment.created_at.desc()],
        tiebreak=Deployment.id,
    )


async def update_deployment(
    session: AsyncSession, deployment: Deployment, data: DeploymentUpdate, actor: str
) -> None:
    if data.name is not None:
        deployment.name = data.name
    if data.description is not None:
        deployment.description = data.description
    if data.importance is not None:
        deployment.importance = data.importance
    if data.health is not None:
        deployment.health = data.health.model_dump(mode="json")
        await add_event(
            session, deployment.id, "health_settings_changed", f"changed by {actor}", actor
        )
    if "max_body_bytes" in data.model_fields_set:  # null: back to the gateway's default
        deployment.max_body_bytes = data.max_body_bytes
    deployment.updated_at = utcnow()
    await session.flush()


async def readable_workloads(
    session: AsyncSession, workload_ids: list[str], principal: Principal
) -> dict[str, tuple[Workload, Artifact]]:
    """Those of `workload_ids` the caller may read, with their artifacts."""
    statement = (
        select(Workload, Artifact)
        .join(Artifact, Artifact.id == Workload.artifact_id)
        .where(Workload.id.in_(set(workload_ids)))
    )
    visible = access.readable("workload", Workload.id, principal)
    if visible is not None:
        statement = statement.where(visible)
    return {
        workload.id: (workload, artifact) for workload, artifact in await session.execute(statement)
    }


def health_settings(deployment: Deployment) -> HealthSettings:
    return HealthSettings.model_validate(deployment.health)


async def add_event(
    session: AsyncSession,
    deployment_id: str,
    type: str,
    message: str,
    actor: str,
    details: dict[str, Any] | None = None,
) -> None:
    await events.add(session, DeploymentEvent, deployment_id, type, message, actor, details)


async def list_events(
    session: AsyncSession, deployment_id: str, page: PageRequest
) -> tuple[list[DeploymentEvent], int]:
    return await events.page(session, DeploymentEvent, deployment_id, page)


async def record_health(
    session: AsyncSession,
    deployment_id: str,
    verdict: HealthStatus,
    reason: str | None,
    event: str,
    message: str,
    actor: str,
) -> None:
    deployment = await session.get(Deployment, deployment_id)
    if deployment is None:
        return
    deployment.health_status = verdict
    deployment.health_reason = reason
    deployment.updated_at = utcnow()
    await add_event(session, deployment_id, event, message, actor, {"healthStatus": verdict})


async def swaps_in_progress(
    session: AsyncSession, deployment_ids: list[str]
) -> dict[str, DeploymentSwap]:
    """The swap in progress of each of the deployments that has one (the newest, if a swap
    began while the previous one kept its old workload)."""
    rows = await session.scalars(
        select(DeploymentSwap)
        .where(
            DeploymentSwap.deployment_id.in_(set(deployment_ids)),
            DeploymentSwap.status.in_(SWAP_IN_PROGRESS),
        )
        .order_by(DeploymentSwap.created_at)
    )
    return {swap.deployment_id: swap for swap in rows}


async def list_swaps(
    session: AsyncSession, deployment_id: str, page: PageRequest
) -> tuple[list[DeploymentSwap], int]:
    statement = select(DeploymentSwap).where(DeploymentSwap.deployment_id == deployment_id)
    return await fetch_page(
        session,
        statement,
        page,
        sort_keys={"createdAt": DeploymentSwap.created_at},
        default_order=[DeploymentSwap.created_at.desc()],
        tiebreak=DeploymentSwap.id,
    )


async def add_health_check(session: AsyncSession, check: HealthCheck) -> None:
    """Append a check and keep only the newest HEALTH_HISTORY of the deployment."""
    session.add(check)
    await session.flush()
    cutoff = await session.scalar(
        select(HealthCheck.id)
        .where(HealthCheck.deployment_id == check.deployment_id)
        .order_by(HealthCheck.id.desc())
        .offset(HEALTH_HISTORY)
        .limit(1)
    )
    if cutoff is not None:
        await session.execute(
            delete(HealthCheck).where(
                HealthCheck.deployment_id == check.deployment_id, HealthCheck.id <= cutoff
            )
        )


async def recent_checks(session: AsyncSession, deployment_id: str, limit: int) -> list[HealthCheck]:
    rows = await session.scalars(
        select(HealthCheck)
        .where(HealthCheck.deployment_id == deployment_id)
        .order_by(HealthCheck.id.desc())
        .limit(limit)
    )
    return list(rows)


async def availability(
    session: AsyncSession, deployment_id: str, window: timedelta
) -> tuple[int, int]:
    """(checks, ok) over the window."""
    since = utcnow() - window
    rows = await session.execute(
        select(func.count(), func.count().filter(HealthCheck.ok.is_(True))).where(
            HealthCheck.deployment_id == deployment_id, HealthCheck.checked_at >= since
        )
    )
    total, ok = rows.one()
    return int(total), int(ok)


def consecutive_failures(checks: list[HealthCheck]) -> int:
    """Failures in a row at the head of `checks` (newest first)."""
    count = 0
    for check in checks:
        if check.ok:
            break
        count += 1
    return count


async def forget_deployment(session: AsyncSession, deployment_id: str) -> None:
    for table in (HealthCheck, DeploymentEvent, DeploymentSwap, DeploymentRollout):
        await session.execute(delete(table).where(table.deployment_id == deployment_id))
    await sharing.forget(session, "deployment", deployment_id)
    await traffic.forget(session, deployment_id)
    await session.execute(delete(Deployment).where(Deployment.id == deployment_id))


async def deployments_of_workload(session: AsyncSession, workload_id: str) -> list[str]:
    """Deployments that route to the workload now, or are swapping or rolling out to it."""
    current = await session.scalars(
        select(Deployment.id).where(Deployment.workload_id == workload_id)
    )
    swapping = await session.scalars(
        select(DeploymentSwap.deployment_id).where(
            DeploymentSwap.to_workload_id == workload_id, DeploymentSwap.status == "starting"
        )
    )
    rolling_out = await session.scalars(
        select(DeploymentRollout.deployment_id).where(
            DeploymentRollout.candidate_workload_id == workload_id,
            DeploymentRollout.status.in_(ROLLOUT_ACTIVE),
        )
    )
    return sorted(set(current) | set(swapping) | set(rolling_out))
