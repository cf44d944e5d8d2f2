"""`/console/deployments/`: stable, governed endpoints; swaps; health; events.

Reading a deployment needs the `owner` or `user` role on it (admins have every role);
changing it needs `owner` and an API key that may change things (`editor` or `admin`).
Putting a workload behind a deployment (create, swap) needs `owner` on the workload.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import StringConstraints

from api.deps import BundlesDep, DeploymentLifecycleDep, Editor, PageDep, SessionDep, Viewer
from api.pagination import page_of
from api.params import DeploymentId, Search
from api.presenters.deployments import (
    present_check,
    present_deployment,
    present_deployment_event,
    present_swap,
)
from api.presenters.workloads import present_workload
from catalog.tables import Deployment, DeploymentSwap, new_id
from models.common import Page
from models.deployments import (
    Availability,
    DeploymentCreate,
    DeploymentEventPublic,
    DeploymentHealth,
    DeploymentPublic,
    DeploymentUpdate,
    SwapCreate,
    SwapPublic,
)
from models.sharing import ShareRole
from models.status import DeploymentStatus, HealthStatus
from models.workloads import WorkloadPublic
from services import access, deployments, rollouts
from services.api_keys import Principal
from services.errors import UnavailableError
from services.listing import PageRequest
from services.refs import DeploymentRef
from workflows.deployment_contract import SwapInput

router = APIRouter(prefix="/console/deployments", tags=["deployments"])
AVAILABILITY_WINDOW = timedelta(hours=1)


@router.post("/", status_code=status.HTTP_201_CREATED, summary="Create a deployment")
async def create_deployment(
    request: Request,
    session: SessionDep,
    principal: Editor,
    lifecycle: DeploymentLifecycleDep,
    response: Response,
    data: DeploymentCreate,
) -> DeploymentPublic:
    """Put a stable, authenticated URL in front of a workload whose artifact is registered (a
    draft-backed workload answers 409) and that you own. You become the deployment's owner."""
    row = await deployments.create_deployment(session, data, principal)
    public = present_deployment(request, row, "owner", swap=None)
    await session.commit()
    try:
        await lifecycle.ensure_workflow(DeploymentRef.of(row))
    except UnavailableError:
        # Nothing half-written: without its workflow the deployment would never be monitored.
        async with session.begin():
            await deployments.forget_deployment(session, row.id)
        raise
    response.headers["Location"] = f"/api/v2/console/deployments/{row.id}/"
    return public


@router.get("/", summary="List deployments")
async def list_deployments(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    page: PageDep,
    bundles: BundlesDep,
    search: Search = None,
    status: Annotated[DeploymentStatus | None, Query()] = None,
    health_status: Annotated[
        HealthStatus | None, Query(alias="healthStatus", description="The health verdict.")
    ] = None,
    workload_id: Annotated[
        str | None, Query(alias="workloadId", max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    ] = None,
    wid: Annotated[
        list[Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]] | None,
        Query(max_length=100, description="Only those in front of these workloads (repeat it)."),
    ] = None,
    workload_details: Annotated[
        bool, Query(alias="workloadDetails", description="Embed each deployment's `workload`.")
    ] = False,
) -> Page[DeploymentPublic]:
    """The deployments you own or use (all of them for admins), newest first."""
    rows, total = await deployments.list_deployments(
        session,
        page,
        search=search,
        status=status,
        health_status=health_status,
        workload_id=workload_id,
        workload_ids=wid,
        principal=principal,
    )
    ids = [row.id for row in rows]
    roles = await access.roles_of(session, "deployment", ids, principal)
    swaps = await deployments.swaps_in_progress(session, ids)
    active = await rollouts.active_rollouts(session, ids)
    shown: dict[str, WorkloadPublic] = {}
    if workload_details:
        found = await deployments.readable_workloads(
            session, [row.workload_id for row in rows], principal
        )
        shown = {
            workload_id: present_workload(request, workload, artifact, bundles)
            for workload_id, (workload, artifact) in found.items()
        }
    return page_of(
        request,
        rows,
        total,
        page,
        lambda row: present_deployment(
            request,
            row,
            roles.get(row.id),
            swaps.get(row.id),
            shown.get(row.workload_id),
            active.get(row.id),
        ),
    )


async def _deployment(
    session: SessionDep, deployment_id: str, principal: Principal, need: access.Need
) -> tuple[Deployment, ShareRole]:
    role = await access.require(session, "deployment", deployment_id, principal, need)
    row = await session.get(Deployment, deployment_id)
    assert row is not None  # access.require found it
    return row, role


@router.get("/{deploymentId}/", summary="Get a deployment")
async def get_deployment(
    request: Request, session: SessionDep, principal: Viewer, deployment_id: DeploymentId
) -> DeploymentPublic:
    """Status (`submitted`, `initializing`, `running`, `stopped`, `errored`: the lifecycle of
    the workload traffic goes to), the health verdict, a swap or rollout in progress, the
    URL."""
    row, role = await _deployment(session, deployment_id, principal, "read")
    return await _present(request, session, row, role)


async def _present(
    request: Request, session: SessionDep, row: Deployment, role: ShareRole
) -> DeploymentPublic:
    swaps = await deployments.swaps_in_progress(session, [row.id])
    active = await rollouts.active_rollouts(session, [row.id])
    return present_deployment(request, row, role, swaps.get(row.id), rollout=active.get(row.id))


@router.patch("/{deploymentId}/", summary="Edit a deployment")
async def update_deployment(
    request: Request,
    session: SessionDep,
    principal: Editor,
    deployment_id: DeploymentId,
    data: DeploymentUpdate,
) -> DeploymentPublic:
    """Name, description and health-check settings (applied from the next check)."""
    row, role = await _deployment(session, deployment_id, principal, "manage")
    await deployments.update_deployment(session, row, data, principal.username)
    return await _present(request, session, row, role)


@router.delete(
    "/{deploymentId}/", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a deployment"
)
async def delete_deployment(
    session: SessionDep,
    principal: Editor,
    lifecycle: DeploymentLifecycleDep,
    deployment_id: DeploymentId,
) -> None:
    """Remove the URL, its tokens and roles. The workload keeps running; stop it yourself."""
    row, _ = await _deployment(session, deployment_id, principal, "manage")
    ref = DeploymentRef.of(row)
    await session.commit()
    await lifecycle.delete(ref, principal.username)


@router.post(
    "/{deploymentId}/swap/", status_code=status.HTTP_202_ACCEPTED, summary="Swap the workload"
)
async def swap_workload(
    request: Request,
    session: SessionDep,
    principal: Editor,
    lifecycle: DeploymentLifecycleDep,
    deployment_id: DeploymentId,
    data: SwapCreate,
) -> SwapPublic:
    """Move traffic to another registered workload without dropping a request: the candidate
    is started if needed and must be running before traffic moves; the old workload is
    stopped once its requests are done (or after `keepPreviousSeconds`). If the candidate is
    not running within `readyTimeoutSeconds`, the swap rolls back and says why."""
    row, _ = await _deployment(session, deployment_id, principal, "manage")
    await deployments.deployable_workload(
        session,
        data.workload_id,
        principal,
        loc=("body", "workloadId"),
        deployment_id=deployment_id,
    )
    ref, swap_id = DeploymentRef.of(row), new_id()
    await session.commit()
    await lifecycle.swap(
        ref,
        SwapInput(
            swap_id=swap_id,
            workload_id=data.workload_id,
            ready_timeout_seconds=data.ready_timeout_seconds,
            keep_previous_seconds=data.keep_previous_seconds,
            actor=principal.username,
        ),
    )
    swap = await session.get(DeploymentSwap, swap_id)
    assert swap is not None  # written by the workflow before the update returns
    request.state.audit_summary = {"swapId": swap_id, "toWorkloadId": data.workload_id}
    return present_swap(swap)


@router.delete(
    "/{deploymentId}/swap/", status_code=status.HTTP_202_ACCEPTED, summary="Cancel a swap"
)
async def cancel_swap(
    session: SessionDep,
    principal: Editor,
    lifecycle: DeploymentLifecycleDep,
    deployment_id: DeploymentId,
) -> SwapPublic:
    """Cancel the swap in progress; traffic stays where it is and a candidate the swap started
    is stopped. Too late once traffic has moved (409): swap back instead."""
    row, _ = await _deployment(session, deployment_id, principal, "manage")
    ref = DeploymentRef.of(row)
    await session.commit()
    await lifecycle.cancel_swap(ref, principal.username)
    swaps, _ = await deployments.list_swaps(session, deployment_id, PageRequest(limit=1))
    return present_swap(swaps[0])


@router.get("/{deploymentId}/swaps/", summary="List a deployment's swaps")
async def list_swaps(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    page: PageDep,
    deployment_id: DeploymentId,
) -> Page[SwapPublic]:
    """Every swap, newest first, with how it ended and why."""
    await _deployment(session, deployment_id, principal, "read")
    rows, total = await deployments.list_swaps(session, deployment_id, page)
    return page_of(request, rows, total, page, present_swap)


@router.get("/{deploymentId}/health/", summary="A deployment's health")
async def deployment_health(
    session: SessionDep,
    principal: Viewer,
    deployment_id: DeploymentId,
    recent: Annotated[int, Query(ge=0, le=100, description="How many recent checks.")] = 20,
) -> DeploymentHealth:
    """The verdict, the last check, failures in a row and availability over the last hour."""
    row, _ = await _deployment(session, deployment_id, principal, "read")
    checks = await deployments.recent_checks(session, deployment_id, max(recent, 100))
    total, ok = await deployments.availability(session, deployment_id, AVAILABILITY_WINDOW)
    return DeploymentHealth(
        status=row.health_status,
        reason=row.health_reason,
        last_check=present_check(checks[0]) if checks else None,
        consecutive_failures=deployments.consecutive_failures(checks),
        availability=Availability(
            window_seconds=int(AVAILABILITY_WINDOW.total_seconds()),
            checks=total,
            ok=ok,
            ratio=round(ok / total, 4) if total else None,
        ),
        recent=[present_check(check) for check in checks[:recent]],
    )


@router.get("/{deploymentId}/events/", summary="List a deployment's events")
async def list_events(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    page: PageDep,
    deployment_id: DeploymentId,
) -> Page[DeploymentEventPublic]:
    """Status changes, swaps, token and sharing changes, oldest first
    (`orderBy=-timestamp` for newest first)."""
    await _deployment(session, deployment_id, principal, "read")
    rows, total = await deployments.list_events(session, deployment_id, page)
    return page_of(request, rows, total, page, present_deployment_event)
