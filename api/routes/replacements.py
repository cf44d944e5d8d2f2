"""`/console/workloads/{workloadId}/replacement/`: move a running workload onto another
artifact in place, keeping its id and endpoint (the public API's replacement, with a
rollout's steps); read the one in progress; cancel it.

Only the workload's owner, with a key that may change things, starts or cancels one (and
must be allowed to run the new artifact); reading needs `owner` or `user`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from api.deps import BundlesDep, Editor, LifecycleDep, LimitsDep, SessionDep, Viewer
from api.params import WorkloadId
from api.presenters.replacements import present_replacement
from catalog.tables import Artifact
from models.replacements import ReplacementCreate, ReplacementPublic
from services import access, candidates, replacements, workloads
from services.errors import ConflictError, UnavailableError
from services.refs import WorkloadRef
from workflows.replacement_contract import ReplacementState

router = APIRouter(prefix="/console/workloads", tags=["replacements"])
REPLACEMENT = "/{workloadId}/replacement/"


@router.post(REPLACEMENT, status_code=status.HTTP_202_ACCEPTED, summary="Replace the artifact")
async def start_replacement(
    request: Request,
    session: SessionDep,
    principal: Editor,
    bundles: BundlesDep,
    limits: LimitsDep,
    lifecycle: LifecycleDep,
    workload_id: WorkloadId,
    data: ReplacementCreate,
) -> ReplacementPublic:
    """Start the new version beside the old one (with the workload's runtime unless `runtime`
    is given), wait until it runs and `config.warmupDurationMinutes` more, then move the
    workload's calls to it by the `steps` (as a rollout's; none: all at once). Once it takes
    every call, the old version is kept `config.keepOldVersionMinutes`, then the workload
    restarts on the new artifact while the new version serves, takes its calls back, and the
    new version's temporary workload is removed. The workload's id and endpoint never change.
    Registered replaces registered, draft replaces draft (422 naming `artifactId`
    otherwise); a workload that is not running, is deployed (use a rollout), or is being
    replaced answers 409."""
    await access.require(session, "workload", workload_id, principal, "manage")
    workload = await workloads.get_workload(session, workload_id)
    found = await session.get(Artifact, data.artifact_id)
    # As at workload creation: running a registered artifact needs any role on it, a draft
    # `owner` or `user`.
    need: access.Need = "use" if found and found.status == "registered" else "read"
    await access.require_reference(
        session, "artifact", data.artifact_id, principal, need, ("body", "artifactId")
    )
    artifact = await replacements.check_replaceable(session, workload, data)
    candidate = await candidates.create_candidate(
        session,
        artifact_id=artifact.id,
        runtime=data.runtime,
        template=workload,
        principal=principal,
        bundles=bundles,
        limits=limits,
        name=f"{workload.name[:170]}-replacement",
    )
    row = await replacements.begin(
        session, workload=workload, candidate=candidate, data=data, actor=principal.username
    )
    made = WorkloadRef.of(candidate, artifact.collection_id)
    state = ReplacementState(
        replacement_id=row.id,
        workload_id=workload_id,
        candidate=candidate.id,
        artifact_id=artifact.id,
        runtime=row.runtime,
        steps=data.steps,
        warmup_seconds=data.config.warmup_duration_minutes * 60,
        keep_old_seconds=data.config.keep_old_version_minutes * 60,
        ready_timeout_seconds=data.ready_timeout_seconds,
        actor=principal.username,
    )
    public = present_replacement(row)
    await session.commit()
    try:
        await lifecycle.ensure_workflow(made)
        await lifecycle.start_replacement(state)
    except (ConflictError, UnavailableError):
        # Nothing half-written: the replacement and the candidate made for it go.
        await replacements.forget(session, row.id)
        await session.commit()
        await candidates.discard(session, lifecycle, made, principal.username)
        raise
    async with session.begin():
        await replacements.note_requested(session, row)
    request.state.audit_summary = {"replacementId": row.id, "artifactId": artifact.id}
    return public


@router.get(REPLACEMENT, summary="Get the replacement in progress")
async def get_replacement(
    session: SessionDep, principal: Viewer, workload_id: WorkloadId
) -> ReplacementPublic:
    """Its status, the step running, the new version's weight and its history; 404 when no
    replacement is in progress (the workload's events keep every past one)."""
    await access.require(session, "workload", workload_id, principal, "read")
    return present_replacement(await replacements.current_or_404(session, workload_id))


@router.delete(REPLACEMENT, status_code=status.HTTP_202_ACCEPTED, summary="Cancel the replacement")
async def cancel_replacement(
    session: SessionDep, principal: Editor, lifecycle: LifecycleDep, workload_id: WorkloadId
) -> ReplacementPublic:
    """Every call back on the old version at once and the new version removed (answered once
    it is); 409 once the new version takes every call and the workload is moving to it."""
    await access.require(session, "workload", workload_id, principal, "manage")
    replacement_id = (await replacements.current_or_404(session, workload_id)).id
    await session.commit()
    await lifecycle.cancel_replacement(workload_id, principal.username)
    session.expire_all()
    return present_replacement(await replacements.get(session, replacement_id))
