"""Candidate workloads made from an artifact, for a rollout or an in-place replacement.

A candidate is an ordinary workload owned by the caller, with the runtime of the workload it
is to replace unless the request gives one. It is written `stopped`, so its workflow starts
idle and the rollout or replacement is the one that starts it (and so stops it on abort).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import Artifact, Workload
from models.workloads import WorkloadCreate, WorkloadRuntime
from services import workloads
from services.api_keys import Principal
from services.bundles import BundleCatalog
from services.errors import DomainError
from services.lifecycle import WorkloadLifecycle
from services.limits import Limits
from services.refs import WorkloadRef

CANDIDATE_REASON = "a candidate: its rollout or replacement starts it"


async def create_candidate(
    session: AsyncSession,
    *,
    artifact_id: str,
    runtime: WorkloadRuntime | None,
    template: Workload,
    principal: Principal,
    bundles: BundleCatalog,
    limits: Limits,
    name: str,
) -> Workload:
    """Write the candidate (checks as at workload creation: access to the artifact, its
    secrets, the runtime); not started."""
    row = await workloads.create_workload(
        session,
        WorkloadCreate(
            name=name,
            description=f"candidate to replace workload {template.id}",
            importance=template.importance,
            artifact_id=artifact_id,
            runtime=runtime or WorkloadRuntime.model_validate(template.runtime),
        ),
        principal,
        bundles,
        limits,
    )
    row.status, row.status_reason = "stopped", CANDIDATE_REASON
    await session.flush()
    return row


async def collection_of(session: AsyncSession, row: Workload) -> str | None:
    artifact = await session.get(Artifact, row.artifact_id)
    return artifact.collection_id if artifact is not None else None


async def discard(
    session: AsyncSession, lifecycle: WorkloadLifecycle, ref: WorkloadRef, actor: str
) -> None:
    """Undo a candidate made for a rollout or replacement that was refused: through its
    workflow if it has one, else (Temporal away) its catalog rows."""
    try:
        await lifecycle.delete(ref, actor)
    except DomainError:
        await workloads.discard_new_workload(session, ref.id, None)
        await session.commit()
