"""How to talk to the deployment workflow: its id and type, its Updates and its activities'
names, and one payload model per call (recorded in histories, so never a secret value)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from models.status import HealthStatus

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


class DeploymentState(BaseModel):
    deployment_id: str
    workload_id: str
    status: HealthVerdict = Field(description="The health verdict last recorded.")
    swap: SwapState | None = None
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
