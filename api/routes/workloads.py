"""`/console/workloads/`: create, read, edit, start, stop and delete workloads.

Reads come from the catalog, so they work while workers are down. Lifecycle changes go to the
workload's workflow; routes commit their reads first so no transaction is held while waiting.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy import delete

from api.deps import (
    BundlesDep,
    Editor,
    LifecycleDep,
    PageDep,
    SessionDep,
    Viewer,
)
from api.pagination import page_of
from api.params import Search, WorkloadId
from catalog.tables import Artifact, Workload, WorkloadEvent, WorkloadReplica
from models.common import Page, UserRef
from models.workloads import (
    ArtifactInfo,
    GroupRuntimePublic,
    Importance,
    ProbeResultPublic,
    ReplicaPublic,
    WorkloadCreate,
    WorkloadEventPublic,
    WorkloadOperation,
    WorkloadPublic,
    WorkloadRuntime,
    WorkloadUpdate,
)
from services import deployments, workloads
from services.bundles import BundleCatalog
from services.errors import ConflictError, UnavailableError
from services.refs import WorkloadRef
from services.workloads import WorkloadFilter, replica_counts
from workflows.workload_contract import WorkloadStatus

router = APIRouter(prefix="/console/workloads", tags=["workloads"])


def endpoint_url(request: Request, workload_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/api/v2/endpoints/workloads/{workload_id}/"


def present(
    request: Request, row: Workload, artifact: Artifact, bundles: BundleCatalog
) -> WorkloadPublic:
    runtime = WorkloadRuntime.model_validate(row.runtime)
    return WorkloadPublic(
        id=row.id,
        name=row.name,
        description=row.description,
        importance=row.importance,
        status=row.status,
        status_reason=row.status_reason,
        artifact_id=artifact.id,
        artifact=ArtifactInfo(
            id=artifact.id,
            name=artifact.name,
            type=artifact.type,
            status=artifact.status,
            version=artifact.version,
            collection_id=artifact.collection_id,
        ),
        runtime=[
            GroupRuntimePublic(
                name=group.name,
                replica_count=group.replica_count,
                resource_bundles=group.resource_bundles,
                resolved_bundle=next(
                    (bundles.get(b) for b in group.resource_bundles if b in bundles), None
                ),
                containers=group.containers,
            )
            for group in runtime.container_groups
        ],
        endpoint=endpoint_url(request, row.id),
        generation=row.generation,
        creator=UserRef(username=row.created_by),
        created_at=row.created_at,
        updated_at=row.updated_at,
        status_changed_at=row.status_changed_at,
    )


async def _present(
    request: Request, session: SessionDep, row: Workload, bundles: BundleCatalog
) -> WorkloadPublic:
    artifact = await session.get(Artifact, row.artifact_id)
    assert artifact is not None  # artifacts used by workloads cannot be deleted
    return present(request, row, artifact, bundles)


def _ref(row: Workload) -> WorkloadRef:
    return WorkloadRef(
        id=row.id,
        status=cast(WorkloadStatus, row.status),
        replicas=replica_counts(WorkloadRuntime.model_validate(row.runtime)),
    )


def _operation(
    request: Request, workload_id: str, result_status: WorkloadStatus
) -> WorkloadOperation:
    return WorkloadOperation(
        status=result_status,
        workload_id=workload_id,
        track_via=f"{str(request.base_url).rstrip('/')}/api/v2/console/workloads/{workload_id}/",
    )


@router.post("/", status_code=status.HTTP_201_CREATED, summary="Create a workload")
async def create_workload(
    request: Request,
    session: SessionDep,
    principal: Editor,
    bundles: BundlesDep,
    lifecycle: LifecycleDep,
    response: Response,
    data: WorkloadCreate,
) -> WorkloadPublic:
    """Create a workload from `artifactId` or an inline `artifact` (which becomes the workload's
    own draft) and start it. It answers at once with status `submitted`; follow `status`."""
    row = await workloads.create_workload(session, data, principal.username, bundles)
    public = await _present(request, session, row, bundles)
    await session.commit()
    try:
        await lifecycle.launch(row.id, "submitted", replica_counts(_runtime(row)))
    except UnavailableError:
        # Nothing half-written: without its workflow the workload would never run.
        await session.execute(delete(WorkloadEvent).where(WorkloadEvent.workload_id == row.id))
        await session.execute(delete(Workload).where(Workload.id == row.id))
        if data.artifact is not None:
            await session.execute(delete(Artifact).where(Artifact.id == row.artifact_id))
        await session.commit()
        raise
    response.headers["Location"] = f"/api/v2/console/workloads/{row.id}/"
    return public


def _runtime(row: Workload) -> WorkloadRuntime:
    return WorkloadRuntime.model_validate(row.runtime)


@router.get("/", summary="List workloads")
async def list_workloads(
    request: Request,
    session: SessionDep,
    _: Viewer,
    bundles: BundlesDep,
    page: PageDep,
    search: Search = None,
    status: Annotated[WorkloadStatus | None, Query(description="Only this status.")] = None,
    importance: Annotated[Importance | None, Query()] = None,
    artifact_id: Annotated[
        str | None, Query(alias="artifactId", max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    ] = None,
) -> Page[WorkloadPublic]:
    """Newest first unless `orderBy` (name, createdAt, updatedAt, status, importance)."""
    where = WorkloadFilter(
        search=search, status=status, artifact_id=artifact_id, importance=importance
    )
    rows, total = await workloads.list_workloads(session, where, page)
    artifacts = {
        a.id: a for a in await workloads.artifacts_of(session, [row.artifact_id for row in rows])
    }
    return page_of(
        request,
        rows,
        total,
        page,
        lambda row: present(request, row, artifacts[row.artifact_id], bundles),
    )


@router.get("/{workloadId}/", summary="Get a workload")
async def get_workload(
    request: Request, session: SessionDep, _: Viewer, bundles: BundlesDep, workload_id: WorkloadId
) -> WorkloadPublic:
    """Its status (and `statusReason` when errored), artifact, runtime and invoke endpoint."""
    return await _present(
        request, session, await workloads.get_workload(session, workload_id), bundles
    )


@router.patch("/{workloadId}/", summary="Edit a workload")
async def update_workload(
    request: Request,
    session: SessionDep,
    principal: Editor,
    bundles: BundlesDep,
    lifecycle: LifecycleDep,
    workload_id: WorkloadId,
    data: WorkloadUpdate,
) -> WorkloadPublic:
    """`name`, `description` and `importance` change at once. In `runtime`, new replica counts
    scale a live workload; other runtime changes (bundles, overrides) apply at the next start."""
    row = await workloads.get_workload(session, workload_id)
    before = replica_counts(_runtime(row))
    new_runtime = await workloads.update_workload(session, row, data, principal.username, bundles)
    ref = _ref(row)
    await session.commit()
    if (
        new_runtime is not None
        and replica_counts(new_runtime) != before
        and ref.status
        in (
            "submitted",
            "initializing",
            "running",
        )
    ):
        try:
            await lifecycle.scale(ref, principal.username, replica_counts(new_runtime))
        except UnavailableError as error:
            raise UnavailableError(
                f"the runtime was saved and applies at the next start, but live scaling failed: "
                f"{error.message}"
            ) from None
    return await _present(
        request, session, await workloads.get_workload(session, workload_id), bundles
    )


@router.post(
    "/{workloadId}/start/", status_code=status.HTTP_202_ACCEPTED, summary="Start a workload"
)
async def start_workload(
    request: Request,
    session: SessionDep,
    principal: Editor,
    lifecycle: LifecycleDep,
    workload_id: WorkloadId,
) -> WorkloadOperation:
    """Start a stopped or errored workload as a new generation; a draft artifact's latest edits
    are picked up. Other states answer 409 naming the current state."""
    ref = _ref(await workloads.get_workload(session, workload_id))
    await session.commit()
    result = await lifecycle.start(ref, principal.username)
    return _operation(request, workload_id, result.status)


@router.post("/{workloadId}/stop/", status_code=status.HTTP_202_ACCEPTED, summary="Stop a workload")
async def stop_workload(
    request: Request,
    session: SessionDep,
    principal: Editor,
    lifecycle: LifecycleDep,
    workload_id: WorkloadId,
) -> WorkloadOperation:
    """Stop and remove the containers (status `stopping`, then `stopped`); the workload and its
    artifact are kept. A stopped workload answers 409."""
    ref = _ref(await workloads.get_workload(session, workload_id))
    await session.commit()
    result = await lifecycle.stop(ref, principal.username)
    return _operation(request, workload_id, result.status)


@router.delete(
    "/{workloadId}/", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a workload"
)
async def delete_workload(
    session: SessionDep, principal: Editor, lifecycle: LifecycleDep, workload_id: WorkloadId
) -> None:
    """Remove its containers, its workflow and its records. Its artifact is kept. A workload
    behind a deployment answers 409: swap it out or delete the deployment first."""
    ref = _ref(await workloads.get_workload(session, workload_id))
    deployed_by = await deployments.deployments_of_workload(session, workload_id)
    if deployed_by:
        raise ConflictError(f"workload '{workload_id}' is deployed by {deployed_by}")
    await session.commit()
    await lifecycle.delete(ref, principal.username)


@router.get("/{workloadId}/events/", summary="List a workload's events")
async def list_events(
    request: Request, session: SessionDep, _: Viewer, page: PageDep, workload_id: WorkloadId
) -> Page[WorkloadEventPublic]:
    """Transitions, restarts, probe failures, scaling and errors, oldest first
    (`orderBy=-timestamp` for newest first)."""
    rows, total = await workloads.list_events(session, workload_id, page)
    return page_of(request, rows, total, page, present_event)


def present_event(row: WorkloadEvent) -> WorkloadEventPublic:
    return WorkloadEventPublic(
        id=row.id,
        workload_id=row.workload_id,
        type=row.type,
        message=row.message,
        details=row.details,
        actor=row.actor,
        timestamp=row.created_at,
    )


@router.get("/{workloadId}/replicas/", summary="List a workload's replicas")
async def list_replicas(
    session: SessionDep, _: Viewer, workload_id: WorkloadId
) -> list[ReplicaPublic]:
    """Per replica: state, readiness, restarts, start time and the last result of each probe."""
    return [present_replica(row) for row in await workloads.list_replicas(session, workload_id)]


def present_replica(row: WorkloadReplica) -> ReplicaPublic:
    return ReplicaPublic(
        name=row.name,
        group=row.group_name,
        index=row.replica_index,
        generation=row.generation,
        state=row.state,
        ready=row.ready,
        restarts=row.restarts,
        started_at=row.started_at,
        address=row.address,
        probes={kind: ProbeResultPublic.model_validate(r) for kind, r in row.probes.items()},
        message=row.message,
        updated_at=row.updated_at,
    )
