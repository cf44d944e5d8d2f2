"""In-place replacements of a workload's artifact in the catalog: the checks before one starts
(the public API's rules), reads, the rows the replacement workflow writes at each step and
decision (with a history line, a workload event and an audit record), and the hand-over of
the workload to the new artifact."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import Artifact, Workload, WorkloadReplacement, utcnow
from models.audit import AuditEntry
from models.replacements import ReplacementCreate
from models.status import REPLACEMENT_ACTIVE, ReplacementStatus
from services import audit, deployments, workloads
from services.errors import ConflictError, FieldProblem, InvalidInputError, NotFoundError
from services.rollouts import SYSTEM_ACTORS, history_line, repeats_last, wire_steps

ARTIFACT_LOC = ("body", "artifactId")


async def check_replaceable(
    session: AsyncSession, workload: Workload, data: ReplacementCreate
) -> Artifact:
    """The new artifact, if the workload may move to it now: the workload runs, no deployment
    routes to it (a deployment moves by a rollout), no replacement is under way, and the
    artifact's status matches the workload's (registered to registered, draft to draft; the
    same registered artifact is no change)."""
    if workload.status != "running":
        raise ConflictError(
            f"workload '{workload.id}' is {workload.status}; only a running workload is "
            "replaced in place (start it, or edit it and start it)"
        )
    deployed_by = await deployments.deployments_of_workload(session, workload.id)
    if deployed_by:
        raise ConflictError(
            f"workload '{workload.id}' is deployed by {deployed_by}: move the deployment "
            "with a rollout instead"
        )
    if await current(session, workload.id) is not None:
        raise ConflictError(f"workload '{workload.id}' has a replacement in progress")
    current_artifact = await session.get(Artifact, workload.artifact_id)
    new = await session.get(Artifact, data.artifact_id)
    assert current_artifact is not None and new is not None  # access checked them
    if new.status != current_artifact.status:
        raise InvalidInputError(
            [
                FieldProblem(
                    ARTIFACT_LOC,
                    f"artifact '{new.id}' is {new.status} but the workload runs a "
                    f"{current_artifact.status} artifact: replace registered with registered, "
                    "draft with draft (register a draft workload's artifact instead)",
                )
            ]
        )
    if new.id == current_artifact.id and new.status == "registered":
        raise InvalidInputError(
            [FieldProblem(ARTIFACT_LOC, f"the workload already runs artifact '{new.id}'")]
        )
    return new


async def begin(
    session: AsyncSession,
    *,
    workload: Workload,
    candidate: Workload,
    data: ReplacementCreate,
    actor: str,
) -> WorkloadReplacement:
    message = (
        f"replacement of artifact {workload.artifact_id} by {data.artifact_id} requested by "
        f"{actor}, new version in workload {candidate.id}"
    )
    row = WorkloadReplacement(
        workload_id=workload.id,
        candidate_workload_id=candidate.id,
        candidate_artifact_id=data.artifact_id,
        previous_artifact_id=workload.artifact_id,
        runtime=None if data.runtime is None else candidate.runtime,
        strategy=data.strategy,
        config=data.config.model_dump(mode="json", by_alias=True),
        steps=wire_steps(data.steps),
        status="initializing",
        weight=0,
        history=[history_line("requested", message, None, 0, actor)],
        requested_by=actor,
    )
    session.add(row)
    await session.flush()
    return row


async def note_requested(session: AsyncSession, row: WorkloadReplacement) -> None:
    """The event and audit record of the request, once its workflow has started."""
    first = row.history[0]
    await _note(session, row, "replacement_requested", first["message"], row.requested_by)


async def current(session: AsyncSession, workload_id: str) -> WorkloadReplacement | None:
    found: WorkloadReplacement | None = await session.scalar(
        select(WorkloadReplacement)
        .where(
            WorkloadReplacement.workload_id == workload_id,
            WorkloadReplacement.status.in_(REPLACEMENT_ACTIVE),
        )
        .order_by(WorkloadReplacement.created_at.desc())
        .limit(1)
    )
    return found


async def refuse_while_replacing(session: AsyncSession, workload_id: str) -> None:
    """409 for a stop or delete asked while the workload is being replaced."""
    found = await current(session, workload_id)
    if found is not None:
        raise ConflictError(
            f"workload '{workload_id}' is being replaced in place (replacement {found.id}, "
            f"{found.status}); cancel the replacement first"
        )


async def current_or_404(session: AsyncSession, workload_id: str) -> WorkloadReplacement:
    """The replacement in progress (404 when none is, as in the public API)."""
    found = await current(session, workload_id)
    if found is None:
        raise NotFoundError("replacement in progress of workload", workload_id)
    return found


async def get(session: AsyncSession, replacement_id: str) -> WorkloadReplacement:
    row = await session.get(WorkloadReplacement, replacement_id)
    if row is None:
        raise NotFoundError("replacement", replacement_id)
    return row


async def record(
    session: AsyncSession,
    *,
    replacement_id: str,
    status: ReplacementStatus,
    step: int | None,
    weight: int,
    event: str,
    message: str,
    actor: str,
    reason: str | None,
    switched: bool,
) -> None:
    row = await session.get(WorkloadReplacement, replacement_id)
    if row is None:
        return
    line = history_line(event, message, step, weight, actor)
    if repeats_last(row.history, line):
        return
    now = utcnow()
    row.status, row.current_step, row.weight, row.updated_at = status, step, weight, now
    row.history = [*row.history, line]
    if reason is not None:
        row.message = reason
    if switched:
        row.switched_at = now
    if status not in REPLACEMENT_ACTIVE:
        row.finished_at = now
    await _note(session, row, f"replacement_{event}", message, actor)


async def hand_over(session: AsyncSession, replacement_id: str) -> None:
    """Point the (stopped) workload at the new artifact, and the new runtime if one was given."""
    row = await get(session, replacement_id)
    workload = await workloads.get_workload(session, row.workload_id)
    workload.artifact_id = row.candidate_artifact_id
    if row.runtime is not None:
        workload.runtime = row.runtime
    workload.updated_at = utcnow()


async def _note(
    session: AsyncSession, row: WorkloadReplacement, event: str, message: str, actor: str
) -> None:
    """The workload's event and the audit record of a step or decision."""
    details = {
        "replacementId": row.id,
        "status": row.status,
        "step": row.current_step,
        "weight": row.weight,
    }
    await workloads.add_event(session, row.workload_id, event, message, actor, details)
    await audit.append(
        session,
        [
            AuditEntry(
                actor=actor,
                actor_kind="system" if actor in SYSTEM_ACTORS else "api_key",
                action=f"replacement.{event.removeprefix('replacement_')}",
                resource_type="workload",
                resource_id=row.workload_id,
                summary={**details, "message": message},
            )
        ],
    )


async def forget(session: AsyncSession, replacement_id: str) -> None:
    """Undo a replacement whose workflow could not be started."""
    await session.execute(
        delete(WorkloadReplacement).where(WorkloadReplacement.id == replacement_id)
    )
