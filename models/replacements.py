"""In-place replacements on the wire: move a workload onto another artifact, keeping its id
and endpoint, with the public API's `StartReplacementRequest` fields (`artifactId`,
`strategy`, `config.warmupDurationMinutes`, `config.keepOldVersionMinutes`, `runtime`) and a
rollout's steps (`setWeight`, `pause`, `analysis`) to shift the workload's calls gradually.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import Field, model_validator

from models.artifacts import ResourceId
from models.common import CamelModel, InputModel, UserRef
from models.rollouts import RolloutHistoryEntry, RolloutStep, check_analyses_see_traffic
from models.status import ReplacementStatus
from models.workloads import WorkloadRuntime

ReplacementStrategy = Literal["rolling"]


class ReplacementConfig(InputModel):
    warmup_duration_minutes: int = Field(
        0,
        ge=0,
        le=1440,
        description="Once the new version runs, wait this long before it takes any call.",
    )
    keep_old_version_minutes: int = Field(
        0,
        ge=0,
        le=1440,
        description="Once the new version takes all calls, keep the old one running this "
        "long (rollback window) before the workload restarts on the new artifact.",
    )


class ReplacementCreate(InputModel):
    artifact_id: ResourceId = Field(
        description="The artifact to run instead: registered if the workload's is, a draft "
        "if it is a draft (a draft may be the same one, to pick up its edits).",
        examples=["65f1c0ffee65f1c0ffee65f3"],
    )
    strategy: ReplacementStrategy = Field(
        description="`rolling`: the new version starts beside the old, calls move to it."
    )
    config: ReplacementConfig = Field(default_factory=ReplacementConfig)
    runtime: WorkloadRuntime | None = Field(
        None, description="The new version's runtime; default: the workload's."
    )
    steps: list[RolloutStep] = Field(
        default_factory=list,
        max_length=50,
        description="As a rollout's, run once the new version runs (and has warmed up); "
        "after the last, it takes all calls. Empty: all calls at once. A pause needs "
        "`durationSeconds` (no one promotes a replacement).",
        examples=[[{"setWeight": 50}, {"pause": {"durationSeconds": 60}}]],
    )
    ready_timeout_seconds: int = Field(
        300, ge=1, le=86400, description="Give up if the new version is not running by then."
    )

    @model_validator(mode="after")
    def _steps_end(self) -> Self:
        for index, step in enumerate(self.steps):
            if step.pause is not None and step.pause.duration_seconds is None:
                raise ValueError(
                    f"steps[{index}].pause.durationSeconds: a replacement's pause needs a "
                    "duration (no one promotes it)"
                )
        check_analyses_see_traffic(self.steps)
        return self


class ReplacementPublic(CamelModel):
    id: str
    workload_id: str
    candidate_artifact_id: str = Field(description="The artifact the workload moves to.")
    previous_artifact_id: str = Field(description="The artifact it ran before.")
    candidate_workload_id: str = Field(
        description="The new version while it runs beside the old (removed at the end; the "
        "workload keeps its id and endpoint)."
    )
    status: ReplacementStatus = Field(
        description="`initializing` until the new version runs and has warmed up, "
        "`progressing` through the steps, `finalizing` while it takes all calls and the "
        "workload restarts on the new artifact, then `completed`, `cancelled` or `errored`."
    )
    strategy: ReplacementStrategy
    config: ReplacementConfig
    runtime: WorkloadRuntime | None
    steps: list[RolloutStep]
    current_step: int | None = Field(description="Index of the step running now, from 0.")
    weight: int = Field(description="Percent of the workload's calls the new version takes.")
    message: str | None = Field(description="Why it was cancelled or failed.")
    history: list[RolloutHistoryEntry] = Field(description="Every step and decision, in order.")
    requested_by: UserRef
    created_at: datetime
    updated_at: datetime
    switched_at: datetime | None = Field(description="When the new version took all calls.")
    finished_at: datetime | None
