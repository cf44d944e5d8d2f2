"""`/console/deployments/{deploymentId}/rollouts/`: move a deployment's traffic to a candidate
workload step by step (weights, pauses, analyses), and steer it while it runs.

Access is a swap's: reading needs `owner` or `user` on the deployment, starting and steering
need `owner` and a key that may change things, and the candidate needs `owner` on it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from api.deps import (
    BundlesDep,
    DeploymentLifecycleDep,
    Editor,
    LifecycleDep,
    LimitsDep,
    PageDep,
    SessionDep,
    Viewer,
)
from api.pagination import page_of
from api.params import DeploymentId, RolloutId
from api.presenters.rollouts import present_rollout
from catalog.tables import Deployment, Workload, new_id
from models.common import Page
from models.rollouts import RolloutCreate, RolloutPromote, RolloutPublic
from services import access, candidates, deployments, rollouts
from services.api_keys import Principal
from services.errors import ConflictError, UnavailableError
from services.refs import DeploymentRef, WorkloadRef
from workflows import deployment_contract as contract

router = APIRouter(prefix="/console/deployments", tags=["rollouts"])
ROLLOUTS = "/{deploymentId}/rollouts/"
ROLLOUT = "/{deploymentId}/rollouts/{rolloutId}/"


@router.post(ROLLOUTS, status_code=status.HTTP_202_ACCEPTED, summary="Start a rollout")
async def create_rollout(
    request: Request,
    session: SessionDep,
    principal: Editor,
    bundles: BundlesDep,
    limits: LimitsDep,
    workload_lifecycle: LifecycleDep,
    lifecycle: DeploymentLifecycleDep,
    deployment_id: DeploymentId,
    data: RolloutCreate,
) -> RolloutPublic:
    """Start the candidate (if needed); once it runs, take the steps in order: `setWeight`
    sends that percent of requests to it, `pause` waits (for `durationSeconds`, or until
    promoted), `analysis` watches the candidate's calls and aborts the rollout if a threshold
    is crossed. After the last step the candidate takes all traffic and the stable workload is
    stopped after `keepPreviousSeconds`. One swap or rollout at a time (409 otherwise).
    With `artifactId` instead of `workloadId`, the candidate is a new workload made from that
    registered artifact (yours, with the stable workload's runtime unless `runtime` is
    given); the rollout starts it, and stops it if it is aborted."""
    row = await _deployment(session, deployment_id, principal, "manage")
    made: WorkloadRef | None = None
    if data.artifact_id is not None:
        stable = await session.get(Workload, row.workload_id)
        assert stable is not None  # a deployment always points at a workload
        candidate = await candidates.create_candidate(
            session,
            artifact_id=data.artifact_id,
            runtime=data.runtime,
            template=stable,
            principal=principal,
            bundles=bundles,
            limits=limits,
            name=f"{row.name[:170]}-candidate",
        )
        candidate_id = candidate.id
        made = WorkloadRef.of(candidate, await candidates.collection_of(session, candidate))
        loc: tuple[str, ...] = ("body", "artifactId")
    else:
        assert data.workload_id is not None  # the model asks for one of the two
        candidate_id, loc = data.workload_id, ("body", "workloadId")
    await deployments.deployable_workload(
        session, candidate_id, principal, loc=loc, deployment_id=deployment_id
    )
    ref, rollout_id = DeploymentRef.of(row), new_id()
    await session.commit()
    try:
        if made is not None:
            await workload_lifecycle.ensure_workflow(made)
        await lifecycle.rollout(
            ref,
            contract.RolloutInput(
                rollout_id=rollout_id,
                workload_id=candidate_id,
                steps=data.steps,
                ready_timeout_seconds=data.ready_timeout_seconds,
                keep_previous_seconds=data.keep_previous_seconds,
                actor=principal.username,
            ),
        )
    except (ConflictError, UnavailableError):
        if made is not None:  # nothing half-written: the candidate made for it goes
            await candidates.discard(session, workload_lifecycle, made, principal.username)
        raise
    request.state.audit_summary = {"rolloutId": rollout_id, "toWorkloadId": candidate_id}
    # Written by the workflow before the Update returned.
    return present_rollout(await rollouts.get_rollout(session, deployment_id, rollout_id))


@router.get(ROLLOUTS, summary="List a deployment's rollouts")
async def list_rollouts(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    page: PageDep,
    deployment_id: DeploymentId,
) -> Page[RolloutPublic]:
    """Every rollout, newest first, with its steps, weight, history and how it ended."""
    await _deployment(session, deployment_id, principal, "read")
    rows, total = await rollouts.list_rollouts(session, deployment_id, page)
    return page_of(request, rows, total, page, present_rollout)


@router.get(ROLLOUT, summary="Get a rollout")
async def get_rollout(
    session: SessionDep,
    principal: Viewer,
    deployment_id: DeploymentId,
    rollout_id: RolloutId,
) -> RolloutPublic:
    """Its status, the step running, the candidate's weight now, and its history."""
    await _deployment(session, deployment_id, principal, "read")
    return present_rollout(await rollouts.get_rollout(session, deployment_id, rollout_id))


@router.post(ROLLOUT + "promote/", summary="Promote a rollout")
async def promote_rollout(
    session: SessionDep,
    principal: Editor,
    lifecycle: DeploymentLifecycleDep,
    deployment_id: DeploymentId,
    rollout_id: RolloutId,
    data: RolloutPromote | None = None,
) -> RolloutPublic:
    """End the current pause or analysis and go on to the next step; with `full`, skip every
    remaining step (the candidate takes all traffic). A paused rollout resumes."""
    full = data.full if data is not None else False
    return await _control(
        session, principal, lifecycle, deployment_id, rollout_id, contract.UPDATE_PROMOTE, full
    )


@router.post(ROLLOUT + "pause/", summary="Pause a rollout")
async def pause_rollout(
    session: SessionDep,
    principal: Editor,
    lifecycle: DeploymentLifecycleDep,
    deployment_id: DeploymentId,
    rollout_id: RolloutId,
) -> RolloutPublic:
    """No further step until resumed or promoted; the weights stay as they are."""
    return await _control(
        session, principal, lifecycle, deployment_id, rollout_id, contract.UPDATE_PAUSE
    )


@router.post(ROLLOUT + "resume/", summary="Resume a paused rollout")
async def resume_rollout(
    session: SessionDep,
    principal: Editor,
    lifecycle: DeploymentLifecycleDep,
    deployment_id: DeploymentId,
    rollout_id: RolloutId,
) -> RolloutPublic:
    """Go on with the steps after a pause by a caller (409 if it is not paused)."""
    return await _control(
        session, principal, lifecycle, deployment_id, rollout_id, contract.UPDATE_RESUME
    )


@router.post(ROLLOUT + "abort/", summary="Abort a rollout")
async def abort_rollout(
    session: SessionDep,
    principal: Editor,
    lifecycle: DeploymentLifecycleDep,
    deployment_id: DeploymentId,
    rollout_id: RolloutId,
) -> RolloutPublic:
    """All traffic back on the stable workload at once (answered once it is); a candidate the
    rollout started is stopped."""
    return await _control(
        session, principal, lifecycle, deployment_id, rollout_id, contract.UPDATE_ABORT
    )


async def _control(
    session: SessionDep,
    principal: Principal,
    lifecycle: DeploymentLifecycleDep,
    deployment_id: str,
    rollout_id: str,
    update: str,
    full: bool = False,
) -> RolloutPublic:
    row = await _deployment(session, deployment_id, principal, "manage")
    await rollouts.get_rollout(session, deployment_id, rollout_id)  # 404 for another's id
    ref = DeploymentRef.of(row)
    await session.commit()
    await lifecycle.control_rollout(
        ref,
        update,
        contract.RolloutControlInput(rollout_id=rollout_id, actor=principal.username, full=full),
    )
    session.expire_all()
    return present_rollout(await rollouts.get_rollout(session, deployment_id, rollout_id))


async def _deployment(
    session: SessionDep, deployment_id: str, principal: Principal, need: access.Need
) -> Deployment:
    await access.require(session, "deployment", deployment_id, principal, need)
    row = await session.get(Deployment, deployment_id)
    assert row is not None  # access.require found it
    return row
