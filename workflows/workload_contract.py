"""Payloads of the workload workflow and its activities."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from runtimes.base import RunPlan

WorkloadStatus = Literal["submitted", "initializing", "running", "stopping", "stopped", "errored"]
DesiredState = Literal["running", "stopped", "deleted"]

TASK_QUEUE_DEFAULT = "workload-api"


def workflow_id(workload_id: str) -> str:
    return f"workload-{workload_id}"


class WorkloadState(BaseModel):
    """Everything the workflow knows; carried across continue-as-new."""

    workload_id: str
    status: WorkloadStatus
    desired: DesiredState
    generation: int = 0
    replicas: dict[str, int] = Field(default_factory=dict, description="Group name -> count.")
    plan: RunPlan | None = None
    initializing_since: datetime | None = None
    reason: str | None = None


class WorkloadInput(BaseModel):
    workload_id: str
    status: WorkloadStatus = Field(
        "submitted", description="Starting status; stopped/errored start idle (recovery)."
    )
    replicas: dict[str, int] = Field(default_factory=dict)
    state: WorkloadState | None = None


class TransitionInput(BaseModel):
    """A start, stop or delete request, with who asked."""

    actor: str


class ScaleInput(BaseModel):
    actor: str
    replicas: dict[str, int] = Field(description="Group name -> replica count.")


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


class PreparePlanInput(BaseModel):
    workload_id: str
    generation: int


class SuperviseInput(BaseModel):
    plan: RunPlan
    wait_for_ready: bool = Field(description="Return once every replica is ready.")
    initializing_since: datetime | None = None


class SuperviseResult(BaseModel):
    outcome: Literal["ready", "failed"]
    reason: str | None = None


class ContainersInput(BaseModel):
    workload_id: str
    keep_generation: int | None = None


class RecordScaleInput(BaseModel):
    workload_id: str
    actor: str
    replicas: dict[str, int]
