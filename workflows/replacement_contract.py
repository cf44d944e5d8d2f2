"""How to talk to the replacement workflow (one per in-place replacement of a workload's
artifact): its id and type, its Update and its activities' names, and one payload model per
call (recorded in histories, so never a secret value). It also calls the deployment
workflow's generic workload activities (start, wait until running, analyse) by their names."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from models.rollouts import RolloutStep
from models.status import ReplacementStatus

# Names recorded in histories: changing one breaks the replay of running workflows.
WORKFLOW_TYPE = "ReplacementWorkflow"
UPDATE_CANCEL = "cancel"
QUERY_CURRENT = "current"
ACTIVITY_RECORD = "replacement.record"
ACTIVITY_RESTART_ON_ARTIFACT = "replacement.restart_on_artifact"
ACTIVITY_DELETE_WORKLOAD = "replacement.delete_workload"


def replacement_workflow_id(workload_id: str) -> str:
    """One replacement of a workload at a time: Temporal refuses a second with this id."""
    return f"replacement-{workload_id}"


class ReplacementState(BaseModel):
    replacement_id: str
    workload_id: str
    candidate: str = Field(description="The candidate workload running the new artifact.")
    artifact_id: str
    runtime: dict[str, Any] | None = None
    steps: list[RolloutStep]
    warmup_seconds: int
    keep_old_seconds: int
    ready_timeout_seconds: int
    actor: str
    status: ReplacementStatus = "initializing"
    step: int | None = None
    weight: int = 0
    deadline: datetime | None = None
    cancelled_by: str | None = None
    reason: str | None = None


class ReplacementInput(BaseModel):
    state: ReplacementState


class CancelInput(BaseModel):
    actor: str


class ReplacementView(BaseModel):
    replacement_id: str
    status: ReplacementStatus
    weight: int


# Activities


class ReplacementRecordInput(BaseModel):
    """A step or decision: the replacement's row, a line of its history, a workload event and
    an audit record."""

    replacement_id: str
    status: ReplacementStatus
    step: int | None
    weight: int
    event: str
    message: str
    actor: str = "system"
    reason: str | None = None
    switched: bool = Field(False, description="The new version takes all calls from now.")


class RestartInput(BaseModel):
    """Stop the workload, point it at the new artifact (and runtime), start it again."""

    replacement_id: str
    workload_id: str
    artifact_id: str
    runtime: dict[str, Any] | None
    actor: str
