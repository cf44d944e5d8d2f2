"""Workloads in the catalog: creation, reads, metadata edits, events and replica status.

Lifecycle changes (start, stop, scale, delete) belong to the workload's workflow; this module
only writes what the API may write itself and what the workflow's activities record.

Why one module of this length: the checks a workload passes before it may run (artifact
access, secrets, limits) sit beside the writes they guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import (
    Artifact,
    ArtifactCollection,
    Workload,
    WorkloadEvent,
    WorkloadReplacement,
    WorkloadReplica,
    utcnow,
)
from models.artifacts import ArtifactCreate
from models.spec import ArtifactSpec
from models.status import WorkloadStatus
from models.workloads import WorkloadCreate, WorkloadRuntime, WorkloadUpdate
from services import access, artifacts, events, secrets, sharing
from services.api_keys import Principal
from services.bundles import BundleCatalog
from services.errors import ConflictError, FieldProblem, InvalidInputError, NotFoundError
from services.limits import Limits
from services.listing import PageRequest, fetch_page, matching
from services.workload_runtime import checked_runtime

SORT_KEYS = {
    "name": Workload.name,
    "createdAt": Workload.created_at,
    "updatedAt": Workload.updated_at,
    "status": Workload.status,
    "importance": Workload.importance,
}


@dataclass(frozen=True)
class WorkloadFilter:
    search: str | None = None
    status: WorkloadStatus | None = None
    artifact_id: str | None = None
    importance: str | None = None


async def create_workload(
    session: AsyncSession,
    data: WorkloadCreate,
    principal: Principal,
    bundles: BundleCatalog,
    limits: Limits = Limits(),
) -> Workload:
    """Write the workload (and its inline artifact: a draft, or registered as version 1 of a
    new collection) with status `submitted`; the caller owns them. Running an artifact needs
    `use` on it if it is registered, `read` if it is a draft (a draft is work in progress, not
    something shared for running), and a role on every secret it references."""
    creator = principal.username
    if data.artifact is not None:
        inline = data.artifact
        artifact = await artifacts.create_artifact(
            session,
            ArtifactCreate(
                name=inline.name or data.name,
                description=inline.description,
                type=inline.type,
                status=inline.status,
                spec=inline.spec,
            ),
            principal,
            limits=limits,
            spec_loc=("body", "artifact", "spec"),
        )
    else:
        assert data.artifact_id is not None
        found = await session.get(Artifact, data.artifact_id)
        need: access.Need = "use" if found and found.status == "registered" else "read"
        loc = ("body", "artifactId")
        await access.require_reference(session, "artifact", data.artifact_id, principal, need, loc)
        assert found is not None  # access.require found it
        artifact = found
        await secrets.require_usable(
            session,
            secrets.spec_references(ArtifactSpec.model_validate(artifact.spec), ()),
            principal,
            f"artifact '{artifact.id}'",
        )
    spec = ArtifactSpec.model_validate(artifact.spec)
    runtime = checked_runtime(data.runtime, spec, artifact.type, bundles, limits)
    _check_runnable(artifact, runtime, limits, ("body", "artifactId"))
    await secrets.check_references(
        session, secrets.runtime_references(data.runtime, ("body", "runtime")), principal
    )
    workload = Workload(
        name=data.name,
        description=data.description,
        importance=data.importance,
        artifact_id=artifact.id,
        status="submitted",
        runtime=_dump(runtime),
        created_by=creator,
    )
    session.add(workload)
    await session.flush()
    sharing.grant_owner(session, "workload", workload.id, creator)
    await add_event(session, workload.id, "created", f"created by {creator}", creator)
    return workload


def _check_runnable(
    artifact: Artifact, runtime: WorkloadRuntime, limits: Limits, loc: tuple[str, ...]
) -> None:
    """The artifact's images come from allowed registries (the list may have changed since it
    was written) and its spec with the runtime fits in a run plan."""
    spec = ArtifactSpec.model_validate(artifact.spec)
    problems = [
        FieldProblem(loc, f"artifact '{artifact.id}': imageUri {problem.msg}")
        for problem in limits.image_problems(spec, ())
    ]
    problems += limits.size_problems(("body", "runtime"), artifact.spec, _dump(runtime))
    if problems:
        raise InvalidInputError(problems)


async def get_workload(session: AsyncSession, workload_id: str) -> Workload:
    workload = await session.get(Workload, workload_id)
    if workload is None:
        raise NotFoundError("workload", workload_id)
    return workload


async def list_workloads(
    session: AsyncSession, where: WorkloadFilter, page: PageRequest, principal: Principal
) -> tuple[list[Workload], int]:
    """The workloads the caller may read that match `where`."""
    statement = select(Workload)
    visible = access.readable("workload", Workload.id, principal)
    if visible is not None:
        statement = statement.where(visible)
    if where.search:
        statement = statement.where(
            matching(where.search, Workload.name, Workload.description, Workload.id)
        )
    if where.status:
        statement = statement.where(Workload.status == where.status)
    if where.artifact_id:
        statement = statement.where(Workload.artifact_id == where.artifact_id)
    if where.importance:
        statement = statement.where(Workload.importance == where.importance)
    return await fetch_page(
        session,
        statement,
        page,
        sort_keys=SORT_KEYS,
        default_order=[Workload.created_at.desc()],
        tiebreak=Workload.id,
    )


async def artifacts_of(session: AsyncSession, artifact_ids: list[str]) -> list[Artifact]:
    if not artifact_ids:
        return []
    return list(await session.scalars(select(Artifact).where(Artifact.id.in_(set(artifact_ids)))))


def replica_counts(runtime: WorkloadRuntime) -> dict[str, int]:
    return {group.name: group.replica_count for group in runtime.container_groups}


@dataclass(frozen=True)
class WorkloadChange:
    """A checked edit: the runtime asked for, and the replica counts that differ from now."""

    runtime: WorkloadRuntime | None
    replicas: dict[str, int]


async def check_update(
    session: AsyncSession,
    workload: Workload,
    data: WorkloadUpdate,
    bundles: BundleCatalog,
    principal: Principal,
    limits: Limits = Limits(),
) -> WorkloadChange:
    """Validate an edit without writing anything."""
    if data.runtime is None:
        return WorkloadChange(runtime=None, replicas={})
    artifact = await session.get(Artifact, workload.artifact_id)
    assert artifact is not None  # artifacts used by workloads cannot be deleted
    runtime = checked_runtime(
        data.runtime, ArtifactSpec.model_validate(artifact.spec), artifact.type, bundles, limits
    )
    problems = limits.size_problems(("body", "runtime"), artifact.spec, _dump(runtime))
    if problems:
        raise InvalidInputError(problems)
    await secrets.check_references(
        session, secrets.runtime_references(data.runtime, ("body", "runtime")), principal
    )
    now = replica_counts(WorkloadRuntime.model_validate(workload.runtime))
    wanted = replica_counts(runtime)
    return WorkloadChange(
        runtime=runtime, replicas={g: n for g, n in wanted.items() if now.get(g) != n}
    )


async def apply_update(
    session: AsyncSession,
    workload: Workload,
    data: WorkloadUpdate,
    change: WorkloadChange,
    actor: str,
) -> None:
    """Write metadata and the runtime's settings. Replica counts are not written here: the
    workload's workflow is their one writer (its `scale` Update), so the row keeps its own."""
    for field in ("name", "description", "importance"):
        value = getattr(data, field)
        if value is not None:
            setattr(workload, field, value)
    if change.runtime is not None:
        counts = replica_counts(WorkloadRuntime.model_validate(workload.runtime))
        runtime = change.runtime.model_copy(deep=True)
        for group in runtime.container_groups:
            group.replica_count = counts.get(group.name, group.replica_count)
        if _dump(runtime) != workload.runtime:
            workload.runtime = _dump(runtime)
            await add_event(
                session,
                workload.id,
                "runtime_changed",
                "runtime changed; applies at next start",
                actor,
            )
    workload.updated_at = utcnow()
    await session.flush()


async def check_start(
    session: AsyncSession, workload: Workload, principal: Principal, limits: Limits = Limits()
) -> None:
    """A start runs the artifact as it is now (a draft may have gained secret references
    since) with the workload's runtime: the caller must be able to use every secret they
    name, and its images must come from allowed registries."""
    artifact = await session.get(Artifact, workload.artifact_id)
    assert artifact is not None  # artifacts used by workloads cannot be deleted
    spec = ArtifactSpec.model_validate(artifact.spec)
    refused = limits.image_problems(spec, ())
    if refused:
        raise ConflictError(f"workload '{workload.id}' cannot start: {refused[0].msg}")
    references = secrets.spec_references(spec, ())
    references += secrets.runtime_references(WorkloadRuntime.model_validate(workload.runtime), ())
    await secrets.require_usable(session, references, principal, f"workload '{workload.id}'")


async def add_event(
    session: AsyncSession,
    workload_id: str,
    type: str,
    message: str,
    actor: str,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    await events.add(session, WorkloadEvent, workload_id, type, message, actor, details, at)


async def list_events(
    session: AsyncSession, workload_id: str, page: PageRequest
) -> tuple[list[WorkloadEvent], int]:
    await get_workload(session, workload_id)
    return await events.page(session, WorkloadEvent, workload_id, page)


async def list_replicas(session: AsyncSession, workload_id: str) -> list[WorkloadReplica]:
    await get_workload(session, workload_id)
    rows = await session.scalars(
        select(WorkloadReplica)
        .where(WorkloadReplica.workload_id == workload_id)
        .order_by(WorkloadReplica.group_name, WorkloadReplica.replica_index)
    )
    return list(rows)


async def record_status(
    session: AsyncSession,
    workload_id: str,
    *,
    status: WorkloadStatus,
    generation: int,
    reason: str | None,
    event: str,
    message: str,
    actor: str,
    at: datetime | None = None,
) -> bool:
    """Write a status change and its event in one transaction. False if the workload is gone."""
    workload = await session.get(Workload, workload_id)
    if workload is None:
        return False
    if status == "initializing" and (workload.status, workload.generation) == (
        "running",
        generation,
    ):
        status = "running"  # its supervision recorded it (`record_running`): no way back
    workload.status = status
    workload.status_reason = reason
    workload.generation = generation
    workload.status_changed_at = workload.updated_at = at or utcnow()
    details: dict[str, Any] = {"status": status, "generation": generation}
    if reason:
        details["reason"] = reason
    await add_event(session, workload_id, event, message, actor, details)
    if status in ("stopped",):
        await session.execute(
            delete(WorkloadReplica).where(WorkloadReplica.workload_id == workload_id)
        )
    return True


async def record_running(
    session: AsyncSession, workload_id: str, generation: int, message: str
) -> bool:
    """`running` for a generation whose replicas just became ready, written by its supervision
    beside them, so no client waits for the workflow to hear of it. Only from `initializing`
    of that generation: whatever the workflow recorded since (a stop) stays. True if the
    catalog says `running` for the generation now (already so on a retried supervision)."""
    now = utcnow()
    changed = await session.execute(
        update(Workload)
        .where(
            Workload.id == workload_id,
            Workload.generation == generation,
            Workload.status == "initializing",
        )
        .values(status="running", status_reason=None, status_changed_at=now, updated_at=now)
    )
    if changed.rowcount:  # type: ignore[attr-defined]
        details = {"status": "running", "generation": generation}
        await add_event(session, workload_id, "running", message, "system", details)
        return True
    current = await session.execute(
        select(Workload.status, Workload.generation).where(Workload.id == workload_id)
    )
    return tuple(current.one_or_none() or ()) == ("running", generation)


async def forget_workload(session: AsyncSession, workload_id: str) -> None:
    """Delete every catalog row of a workload (its draft artifact stays, like any artifact)."""
    for table in (WorkloadReplica, WorkloadEvent, WorkloadReplacement):
        await session.execute(delete(table).where(table.workload_id == workload_id))
    await session.execute(delete(Workload).where(Workload.id == workload_id))
    await sharing.forget(session, "workload", workload_id)


async def discard_new_workload(
    session: AsyncSession, workload_id: str, inline_artifact_id: str | None
) -> None:
    """Undo a creation whose workflow could not be started, inline artifact included (and the
    collection registering it made)."""
    await forget_workload(session, workload_id)
    if inline_artifact_id is not None:
        collection_id = await session.scalar(
            select(Artifact.collection_id).where(Artifact.id == inline_artifact_id)
        )
        await session.execute(delete(Artifact).where(Artifact.id == inline_artifact_id))
        await sharing.forget(session, "artifact", inline_artifact_id)
        if collection_id is not None:
            await session.execute(
                delete(ArtifactCollection).where(ArtifactCollection.id == collection_id)
            )
            await sharing.forget(session, "collection", collection_id)


def _dump(runtime: WorkloadRuntime) -> dict[str, Any]:
    return runtime.model_dump(mode="json", by_alias=True, exclude_none=True)


async def last_scalings(session: AsyncSession, workload_id: str) -> list[WorkloadEvent]:
    """The workload's latest `scaled` events, newest first (a few: one may name each group)."""
    rows = await session.scalars(
        select(WorkloadEvent)
        .where(WorkloadEvent.workload_id == workload_id, WorkloadEvent.type == "scaled")
        .order_by(WorkloadEvent.id.desc())
        .limit(20)
    )
    return list(rows)
