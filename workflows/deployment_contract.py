"""How to talk to the deployment workflow: its id and type, its Updates and its activities'
names, and one payload model per call (recorded in histories, so never a secret value)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from models.rollouts import AnalysisStep, RolloutStep
from models.status import HealthStatus, RolloutStatus

# The health verdict as histories carry it: `active`, `inactive` and `swapping` are how
# histories recorded before migration 0008 say `healthy`, `unknown` and a swap in progress.
HealthVerdict = HealthStatus | Literal["active", "inactive", "swapping"]
LEGACY_VERDICTS: dict[str, HealthStatus] = {
    "active": "healthy",
    "inactive": "unknown",
    "swapping": "unknown",
}


def current_verdict(verdict: HealthVerdict) -> HealthStatus:
    """The verdict in today's words (a retried activity of an older history may send one)."""
    return LEGACY_VERDICTS.get(verdict, verdict)  # type: ignore[arg-type]


# Names recorded in histories: changing one breaks the replay of running workflows. The
# activities are prefixed: the workload activities own the plain names.
WORKFLOW_TYPE = "DeploymentWorkflow"
UPDATE_SWAP = "swap"
UPDATE_CANCEL_SWAP = "cancel_swap"
UPDATE_DELETE = "delete"
QUERY_CURRENT = "current"
ACTIVITY_RECORD_STATUS = "deployment.record_status"
ACTIVITY_BEGIN_SWAP = "deployment.begin_swap"
ACTIVITY_FINISH_SWAP = "deployment.finish_swap"
ACTIVITY_ENSURE_WORKLOAD_STARTED = "deployment.ensure_workload_started"
ACTIVITY_WAIT_RUNNING = "deployment.wait_running"
ACTIVITY_STOP_WORKLOAD = "deployment.stop_workload"
ACTIVITY_MONITOR = "deployment.monitor"
ACTIVITY_FORGET_DEPLOYMENT = "deployment.forget_deployment"
ACTIVITY_RECORD_EVENT = "deployment.record_event"
UPDATE_ROLLOUT = "rollout"
UPDATE_PROMOTE = "rollout.promote"
UPDATE_PAUSE = "rollout.pause"
UPDATE_RESUME = "rollout.resume"
UPDATE_ABORT = "rollout.abort"
QUERY_ROLLOUT = "rollout_state"
ACTIVITY_BEGIN_ROLLOUT = "deployment.begin_rollout"
ACTIVITY_RECORD_ROLLOUT = "deployment.record_rollout"
ACTIVITY_ANALYZE_ROLLOUT = "deployment.analyze_rollout"


def deployment_workflow_id(deployment_id: str) -> str:
    return f"deployment-{deployment_id}"


class SwapState(BaseModel):
    swap_id: str
    candidate: str
    previous: str
    previous_status: HealthVerdict
    ready_timeout_seconds: int
    keep_previous_seconds: int
    actor: str
    deadline: datetime | None = None
    started_candidate: bool = False
    cancelled_by: str | None = None
    switching: bool = False


class Retirement(BaseModel):
    """An old workload to stop once its rollback window is over, completing its swap."""

    swap_id: str
    workload_id: str
    stop_at: datetime


class RolloutState(BaseModel):
    """A rollout in progress. `step` is the index of the step running (or next to run)."""

    rollout_id: str
    candidate: str
    stable: str
    steps: list[RolloutStep]
    ready_timeout_seconds: int
    keep_previous_seconds: int
    actor: str
    status: RolloutStatus = "starting"
    step: int = 0
    weight: int = 0
    deadline: datetime | None = None
    started_candidate: bool = False
    paused_by: str | None = None
    promote_step: bool = False
    promote_full: bool = False
    aborted_by: str | None = None
    abort_reason: str | None = None
    is_swap: bool = Field(
        False,
        description="A swap run as the default rollout (no steps: all traffic once the "
        "candidate runs); its records are the swap's (`DeploymentState.swap`).",
    )


class DeploymentState(BaseModel):
    deployment_id: str
    workload_id: str
    status: HealthVerdict = Field(description="The health verdict last recorded.")
    swap: SwapState | None = None
    rollout: RolloutState | None = None
    retiring: list[Retirement] = Field(default_factory=list)
    deleting: bool = False


class DeploymentInput(BaseModel):
    deployment_id: str
    workload_id: str
    status: HealthVerdict = "unknown"
    state: DeploymentState | None = None


class SwapInput(BaseModel):
    swap_id: str
    workload_id: str
    ready_timeout_seconds: int
    keep_previous_seconds: int
    actor: str


class ActorInput(BaseModel):
    actor: str


class RolloutInput(BaseModel):
    rollout_id: str
    workload_id: str
    steps: list[RolloutStep]
    ready_timeout_seconds: int
    keep_previous_seconds: int
    actor: str


class RolloutControlInput(BaseModel):
    rollout_id: str
    actor: str
    full: bool = Field(False, description="For promote: skip every remaining step.")


class RolloutView(BaseModel):
    """What the `rollout` query and the control Updates answer."""

    rollout_id: str | None
    status: RolloutStatus | None = None
    step: int | None = None
    step_kind: str | None = None
    weight: int = 0
    paused_by: str | None = None


class DeploymentResult(BaseModel):
    status: HealthVerdict
    workload_id: str


# Activities


class MonitorInput(BaseModel):
    deployment_id: str
    status: HealthVerdict = Field(description="What the catalog says now; return on change.")


class MonitorResult(BaseModel):
    status: HealthVerdict
    reason: str | None = None


class RecordDeploymentInput(BaseModel):
    deployment_id: str
    status: HealthVerdict
    reason: str | None
    event: str
    message: str
    actor: str = "system"


class DeploymentEventInput(BaseModel):
    """An event that changes no status (a monitor that waits or failed, a stop that failed)."""

    deployment_id: str
    event: str
    message: str


class BeginSwapInput(BaseModel):
    deployment_id: str
    swap_id: str
    from_workload_id: str
    to_workload_id: str
    ready_timeout_seconds: int
    keep_previous_seconds: int
    actor: str


class SwapRecordInput(BaseModel):
    deployment_id: str
    swap_id: str
    status: Literal["switched", "completed", "rolled_back", "cancelled"]
    reason: str | None = None
    actor: str = "system"
    workload_id: str | None = Field(None, description="For `switched`: where traffic goes now.")


class WorkloadTargetInput(BaseModel):
    workload_id: str
    actor: str


class WaitRunningInput(BaseModel):
    workload_id: str
    deadline: datetime


class WaitRunningResult(BaseModel):
    running: bool
    reason: str | None = None


class EnsureStartedResult(BaseModel):
    started: bool = Field(description="True if this call started it (so a rollback stops it).")


class DeploymentIdInput(BaseModel):
    deployment_id: str


class BeginRolloutInput(BaseModel):
    deployment_id: str
    rollout_id: str
    stable_workload_id: str
    candidate_workload_id: str
    steps: list[RolloutStep]
    ready_timeout_seconds: int
    keep_previous_seconds: int
    actor: str


class RolloutRecordInput(BaseModel):
    """A step or decision: the rollout's row, a line of its history, an event, an audit
    record. `completed` also moves the deployment's traffic to the candidate for good."""

    deployment_id: str
    rollout_id: str
    status: RolloutStatus
    step: int | None
    weight: int
    event: str
    message: str
    actor: str = "system"
    reason: str | None = None


class AnalyzeInput(BaseModel):
    deployment_id: str
    candidate_workload_id: str
    stable_workload_id: str
    since: datetime
    until: datetime
    analysis: AnalysisStep


class AnalyzeResult(BaseModel):
    passed: bool
    summary: str = Field(description="The figures measured, and the threshold crossed if any.")
