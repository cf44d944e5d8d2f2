"""How to talk to the workload workflow: its id and type, its Updates and its activities'
names, and one payload model per call (recorded in histories, so never a secret value)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from models.plan import RunPlan
from models.status import WorkloadStatus

DesiredState = Literal["running", "stopped", "deleted"]

# Names recorded in histories: changing one breaks the replay of running workflows.
WORKFLOW_TYPE = "WorkloadWorkflow"
UPDATE_START = "start"
UPDATE_STOP = "stop"
UPDATE_SCALE = "scale"
UPDATE_DELETE = "delete"
QUERY_CURRENT = "current"
SIGNAL_SUPERVISED = "supervised"
ACTIVITY_RECORD_STATUS = "record_status"
ACTIVITY_RECORD_SCALE = "record_scale"
ACTIVITY_PREPARE_PLAN = "prepare_plan"
ACTIVITY_BEGIN_GENERATION = "begin_generation"
ACTIVITY_WITHDRAW_REPLICAS = "withdraw_replicas"
ACTIVITY_FORGET_WORKLOAD = "forget_workload"
ACTIVITY_SUPERVISE = "supervise"
ACTIVITY_HALT_CONTAINERS = "halt_containers"
ACTIVITY_REMOVE_CONTAINERS = "remove_containers"
ACTIVITY_RELEASE_SUPERVISION = "release_supervision"


def workflow_id(workload_id: str) -> str:
    return f"workload-{workload_id}"


class WorkloadState(BaseModel):
    """Everything the workflow knows; carried across continue-as-new."""

    workload_id: str
    status: WorkloadStatus
    desired: DesiredState
    generation: int = 0
    plan: RunPlan | None = Field(
        None, description="What the current generation runs, replica counts included."
    )
    initializing_since: datetime | None = None
    reason: str | None = None


class WorkloadInput(BaseModel):
    workload_id: str
    status: WorkloadStatus = Field(
        "submitted", description="Starting status; stopped/errored start idle (recovery)."
    )
    state: WorkloadState | None = None


class TransitionInput(BaseModel):
    """A start, stop or delete request, with who asked."""

    actor: str


class ScaleInput(BaseModel):
    actor: str
    replicas: dict[str, int] = Field(description="Group name -> replica count.")
    reason: str | None = Field(None, description="Why, for the event (the autoscaler's).")


class TransitionResult(BaseModel):
    status: WorkloadStatus
    generation: int


# Activities


class RecordStatusInput(BaseModel):
    workload_id: str
    status: WorkloadStatus
    generation: int
    actor: str
    event: str = Field(description="Event type recorded with the change.")
    message: str
    reason: str | None = None


class RecordStatusResult(BaseModel):
    exists: bool = Field(description="False when the workload row is gone (deleted meanwhile).")


class BeginGenerationResult(BaseModel):
    """`initializing` recorded and the generation planned, in one transaction."""

    exists: bool = Field(description="False when the workload row is gone (deleted meanwhile).")
    plan: RunPlan | None = None
    failure: str | None = Field(None, description="Why the generation cannot be planned.")


class PreparePlanInput(BaseModel):
    workload_id: str
    generation: int


class SuperviseInput(BaseModel):
    plan: RunPlan
    wait_for_ready: bool = Field(description="Return once every replica is ready.")
    initializing_since: datetime | None = None


class SuperviseResult(BaseModel):
    outcome: Literal["ready", "failed", "released"]
    reason: str | None = None
    running_recorded: bool = Field(
        default=False,
        description="The catalog says `running` (written beside the ready replicas).",
    )


class SupervisedInput(BaseModel):
    """Sent by a `supervise` activity when it starts: where to release it."""

    activity_id: str
    attempt: int
    worker: str = Field(description="Identity of the worker process that supervises.")
    task_queue: str = Field(description="The task queue only that worker polls.")


class WorkloadIdInput(BaseModel):
    """An activity call about one workload (withdraw, halt, remove, release, forget)."""

    workload_id: str


class RecordScaleInput(BaseModel):
    workload_id: str
    actor: str
    replicas: dict[str, int]
    reason: str | None = None
