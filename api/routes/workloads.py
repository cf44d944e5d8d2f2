"""`/console/workloads/`: create, read, edit, start, stop and delete workloads.

Reading needs `owner` or `user` on the workload (or on a deployment in front of it); changing,
starting, stopping and deleting need `owner` and an editor or admin key.

Reads come from the catalog, so they work while workers are down. Lifecycle changes go to the
workload's workflow; routes commit their reads first so no transaction is held while waiting.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from api.deps import (
    BundlesDep,
    Editor,
    LifecycleDep,
    LimitsDep,
    PageDep,
    SessionDep,
    StatusWatchDep,
    Viewer,
)
from api.pagination import page_of
from api.params import Search, WorkloadId
from api.presenters.workloads import (
    present_operation,
    present_replica,
    present_scaling,
    present_workload,
    present_workload_event,
)
from catalog.tables import Artifact, Workload
from models.common import Page
from models.status import WorkloadStatus
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
from services import access, deployments, replacements, workloads
from services.api_keys import Principal
from services.bundles import BundleCatalog
from services.errors import ConflictError, UnavailableError
from services.refs import WorkloadRef
from services.workloads import WorkloadFilter

router = APIRouter(prefix="/console/workloads", tags=["workloads"])

# Under the usual 60 s of proxies and load balancers between a client and the API.
MAX_WAIT_SECONDS = 30
DEFAULT_WAIT_SECONDS = 20


async def _present(
    request: Request, session: SessionDep, row: Workload, bundles: BundleCatalog
) -> WorkloadPublic:
    artifact = await session.get(Artifact, row.artifact_id)
    assert artifact is not None  # artifacts used by workloads cannot be deleted
    return present_workload(request, row, artifact, bundles)


@router.post("/", status_code=status.HTTP_201_CREATED, summary="Create a workload")
async def create_workload(
    request: Request,
    session: SessionDep,
    principal: Editor,
    bundles: BundlesDep,
    limits: LimitsDep,
    lifecycle: LifecycleDep,
    response: Response,
    data: WorkloadCreate,
) -> WorkloadPublic:
    """Create a workload from `artifactId` or an inline `artifact` (which becomes the workload's
    own draft, or with `status: registered` version 1 of a new collection) and start it; you
    own it. Running a registered artifact needs any role on it, a draft `owner` or `user`, and
    every secret it references must be shared with you. It answers at once with status
    `submitted`; follow `status`."""
    row = await workloads.create_workload(session, data, principal, bundles, limits)
    public = await _present(request, session, row, bundles)
    await session.commit()
    try:
        await lifecycle.ensure_workflow(WorkloadRef.of(row, public.artifact.collection_id))
    except UnavailableError:
        # Nothing half-written: without its workflow the workload would never run.
        inline = row.artifact_id if data.artifact is not None else None
        await workloads.discard_new_workload(session, row.id, inline)
        await session.commit()
        raise
    response.headers["Location"] = f"/api/v2/console/workloads/{row.id}/"
    return public


@router.get("/", summary="List workloads")
async def list_workloads(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    bundles: BundlesDep,
    page: PageDep,
    search: Search = None,
    status: Annotated[WorkloadStatus | None, Query(description="Only this status.")] = None,
    importance: Annotated[Importance | None, Query()] = None,
    artifact_id: Annotated[
        str | None, Query(alias="artifactId", max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    ] = None,
) -> Page[WorkloadPublic]:
    """The workloads you may read, newest first unless `orderBy` (name, createdAt, updatedAt,
    status, importance)."""
    where = WorkloadFilter(
        search=search, status=status, artifact_id=artifact_id, importance=importance
    )
    rows, total = await workloads.list_workloads(session, where, page, principal)
    artifacts = {
        a.id: a for a in await workloads.artifacts_of(session, [row.artifact_id for row in rows])
    }
    return page_of(
        request,
        rows,
        total,
        page,
        lambda row: present_workload(request, row, artifacts[row.artifact_id], bundles),
    )


async def _workload(
    session: SessionDep, workload_id: str, principal: Principal, need: access.Need
) -> Workload:
    await access.require(session, "workload", workload_id, principal, need)
    return await workloads.get_workload(session, workload_id)


@router.get("/{workloadId}/", summary="Get a workload")
async def get_workload(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    bundles: BundlesDep,
    watch: StatusWatchDep,
    workload_id: WorkloadId,
    wait_for_status: Annotated[
        list[WorkloadStatus] | None,
        Query(
            alias="waitForStatus",
            description="Answer once the status is one of these (repeat the parameter for "
            "several) or the workload is gone, or after `waitSeconds`. Not in the public "
            "Workload API: its clients poll.",
        ),
    ] = None,
    wait_seconds: Annotated[
        float,
        Query(
            alias="waitSeconds",
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="The longest the answer waits for `waitForStatus`.",
        ),
    ] = DEFAULT_WAIT_SECONDS,
) -> WorkloadPublic:
    """Its status (and `statusReason` when errored), artifact, runtime and invoke endpoint."""
    row = await _workload(session, workload_id, principal, "read")
    if wait_for_status and row.status not in wait_for_status:
        await session.commit()  # no transaction held while waiting
        await watch.wait(workload_id, wait_for_status, wait_seconds)
        session.expire_all()
        row = await _workload(session, workload_id, principal, "read")  # read access again
    return await _present(request, session, row, bundles)


@router.patch("/{workloadId}/", summary="Edit a workload")
async def update_workload(
    request: Request,
    session: SessionDep,
    principal: Editor,
    bundles: BundlesDep,
    limits: LimitsDep,
    lifecycle: LifecycleDep,
    workload_id: WorkloadId,
    data: WorkloadUpdate,
) -> WorkloadPublic:
    """`name`, `description` and `importance` change at once. In `runtime`, new replica counts
    scale the workload (live if it runs); other runtime changes (bundles, overrides) apply at the
    next start. A scale that cannot be applied (503, 409) leaves everything unchanged."""
    row = await _workload(session, workload_id, principal, "manage")
    change = await workloads.check_update(session, row, data, bundles, principal, limits)
    if change.replicas:
        ref = WorkloadRef.of(row)
        await session.commit()  # no transaction may wait on Temporal
        await lifecycle.scale(ref, principal.username, change.replicas)
        await session.refresh(row)  # the workflow wrote the new counts
    await workloads.apply_update(session, row, data, change, principal.username)
    return await _present(request, session, row, bundles)


@router.post(
    "/{workloadId}/start/", status_code=status.HTTP_202_ACCEPTED, summary="Start a workload"
)
async def start_workload(
    request: Request,
    session: SessionDep,
    principal: Editor,
    limits: LimitsDep,
    lifecycle: LifecycleDep,
    workload_id: WorkloadId,
) -> WorkloadOperation:
    """Start a stopped or errored workload as a new generation; a draft artifact's latest edits
    are picked up. Other states answer 409 naming the current state. Every secret the artifact
    and the runtime reference must be shared with you."""
    row = await _workload(session, workload_id, principal, "manage")
    await workloads.check_start(session, row, principal, limits)
    ref = WorkloadRef.of(row)
    await session.commit()
    result = await lifecycle.start(ref, principal.username)
    return present_operation(request, workload_id, result.status)


@router.post("/{workloadId}/stop/", status_code=status.HTTP_202_ACCEPTED, summary="Stop a workload")
async def stop_workload(
    request: Request,
    session: SessionDep,
    principal: Editor,
    lifecycle: LifecycleDep,
    workload_id: WorkloadId,
) -> WorkloadOperation:
    """Stop and remove the containers (status `stopping`, then `stopped`); the workload and its
    artifact are kept. A stopped workload, or one being replaced in place, answers 409."""
    ref = WorkloadRef.of(await _workload(session, workload_id, principal, "manage"))
    await replacements.refuse_while_replacing(session, workload_id)
    await session.commit()
    result = await lifecycle.stop(ref, principal.username)
    return present_operation(request, workload_id, result.status)


@router.delete(
    "/{workloadId}/", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a workload"
)
async def delete_workload(
    session: SessionDep, principal: Editor, lifecycle: LifecycleDep, workload_id: WorkloadId
) -> None:
    """Remove its containers, its workflow and its records. Its artifact is kept. A workload
    behind a deployment answers 409: swap it out or delete the deployment first; so does one
    being replaced in place (cancel the replacement first)."""
    ref = WorkloadRef.of(await _workload(session, workload_id, principal, "manage"))
    deployed_by = await deployments.deployments_of_workload(session, workload_id)
    if deployed_by:
        raise ConflictError(f"workload '{workload_id}' is deployed by {deployed_by}")
    await replacements.refuse_while_replacing(session, workload_id)
    await session.commit()
    await lifecycle.delete(ref, principal.username)


@router.get("/{workloadId}/events/", summary="List a workload's events")
async def list_events(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    page: PageDep,
    workload_id: WorkloadId,
) -> Page[WorkloadEventPublic]:
    """Transitions, restarts, probe failures, scaling and errors, oldest first
    (`orderBy=-timestamp` for newest first)."""
    await access.require(session, "workload", workload_id, principal, "read")
    rows, total = await workloads.list_events(session, workload_id, page)
    return page_of(request, rows, total, page, present_workload_event)


@router.get("/{workloadId}/replicas/", summary="List a workload's replicas")
async def list_replicas(
    session: SessionDep, principal: Viewer, workload_id: WorkloadId
) -> list[ReplicaPublic]:
    """Per replica: state, readiness, restarts, start time and the last result of each probe."""
    await access.require(session, "workload", workload_id, principal, "read")
    return [present_replica(row) for row in await workloads.list_replicas(session, workload_id)]


@router.get("/{workloadId}/scaling/", summary="A workload's desired and actual replicas")
async def get_scaling(
    session: SessionDep, principal: Viewer, workload_id: WorkloadId
) -> WorkloadScaling:
    """Per container group: the replicas it should run now (the autoscaler's latest decision,
    or the count set by hand), how many are ready and reported, its autoscaling settings, and
    the latest change with its reason (`scaled` events carry every change)."""
    await access.require(session, "workload", workload_id, principal, "read")
    workload = await workloads.get_workload(session, workload_id)
    replicas = await workloads.list_replicas(session, workload_id)
    return present_scaling(workload, replicas, await workloads.last_scalings(session, workload_id))
