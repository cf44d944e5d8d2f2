"""Rollouts on the wire: move a deployment's traffic to a candidate workload step by step.

A step is an object with exactly one key, as in Argo Rollouts: `{"setWeight": 10}`,
`{"pause": {"durationSeconds": 600}}` (or `{"pause": {}}`: until promoted), and
`{"analysis": {...}}` (watch the candidate's calls for a while against thresholds). After
the last step the candidate takes all traffic; no steps at all is a swap.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import Field, model_validator

from models.artifacts import ResourceId
from models.common import CamelModel, InputModel, UserRef
from models.status import RolloutStatus
from models.workloads import WorkloadRuntime

MAX_WAIT_SECONDS = 30 * 86400  # a pause or an analysis may last up to 30 days
StepKind = Literal["setWeight", "pause", "analysis"]


class PauseStep(InputModel):
    duration_seconds: int | None = Field(
        None,
        ge=1,
        le=MAX_WAIT_SECONDS,
        description="How long to wait before the next step; null or left out: until promoted.",
        examples=[600],
    )


class AnalysisStep(InputModel):
    """Watch the candidate's calls through the gateway for `durationSeconds`, then compare
    them with the thresholds given; any threshold crossed aborts the rollout."""

    duration_seconds: int = Field(ge=10, le=MAX_WAIT_SECONDS, examples=[300])
    min_requests: int = Field(
        10,
        ge=1,
        le=10**9,
        description="Fewer candidate calls than this in the window fails the analysis: "
        "nothing was shown.",
    )
    max_error_rate: float | None = Field(
        None, ge=0, le=1, description="Most 5xx answers per call of the candidate.", examples=[0.01]
    )
    max_p95_latency_ms: float | None = Field(
        None, gt=0, le=3_600_000, description="Slowest p95 latency of the candidate."
    )
    max_error_rate_increase: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Most the candidate's error rate may exceed the stable workload's over "
        "the same window.",
        examples=[0.01],
    )
    max_p95_latency_ratio: float | None = Field(
        None,
        ge=1,
        le=1000,
        description="Most the candidate's p95 latency may be, as a multiple of stable's.",
        examples=[1.5],
    )

    @model_validator(mode="after")
    def _some_threshold(self) -> Self:
        thresholds = (
            self.max_error_rate,
            self.max_p95_latency_ms,
            self.max_error_rate_increase,
            self.max_p95_latency_ratio,
        )
        if all(value is None for value in thresholds):
            raise ValueError(
                "give at least one threshold: maxErrorRate, maxP95LatencyMs, "
                "maxErrorRateIncrease or maxP95LatencyRatio"
            )
        return self


class RolloutStep(InputModel):
    set_weight: int | None = Field(
        None, ge=0, le=100, description="Percent of requests the candidate takes from now on."
    )
    pause: PauseStep | None = None
    analysis: AnalysisStep | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [self.set_weight, self.pause, self.analysis]
        if sum(value is not None for value in given) != 1:
            raise ValueError("a step has exactly one of setWeight, pause, analysis")
        return self

    @property
    def kind(self) -> StepKind:
        if self.set_weight is not None:
            return "setWeight"
        return "pause" if self.pause is not None else "analysis"


def check_analyses_see_traffic(steps: list[RolloutStep]) -> None:
    """An analysis needs the candidate to take some traffic before it."""
    weight = 0
    for index, step in enumerate(steps):
        if step.set_weight is not None:
            weight = step.set_weight
        elif step.analysis is not None and weight == 0:
            raise ValueError(
                f"steps[{index}].analysis: the candidate takes no traffic yet; put a "
                "setWeight step above 0 before it"
            )


class RolloutCreate(InputModel):
    workload_id: ResourceId | None = Field(
        None,
        description="The registered workload to move traffic to (the candidate); or give "
        "`artifactId` instead.",
        examples=["65f1c0ffee65f1c0ffee65f2"],
    )
    artifact_id: ResourceId | None = Field(
        None,
        description="A registered artifact to make the candidate from: a new workload you "
        "own, with the stable workload's runtime unless `runtime` is given, started by the "
        "rollout (and so stopped if it is aborted).",
        examples=["65f1c0ffee65f1c0ffee65f3"],
    )
    runtime: WorkloadRuntime | None = Field(
        None, description="With `artifactId`: the candidate's runtime (default: stable's)."
    )
    steps: list[RolloutStep] = Field(
        default_factory=list,
        max_length=50,
        description="Run in order once the candidate is running; after the last, the candidate "
        "takes all traffic. Empty: all traffic at once (a swap).",
        examples=[
            [
                {"setWeight": 10},
                {"pause": {"durationSeconds": 600}},
                {"analysis": {"durationSeconds": 300, "maxErrorRate": 0.01}},
                {"setWeight": 50},
                {"pause": {}},
            ]
        ],
    )
    ready_timeout_seconds: int = Field(
        300, ge=1, le=86400, description="Abort if the candidate is not running by then."
    )
    keep_previous_seconds: int = Field(
        0,
        ge=0,
        le=86400,
        description="Once the candidate takes all traffic, keep the stable workload running "
        "this long (rollback window).",
    )

    @model_validator(mode="after")
    def _one_candidate(self) -> Self:
        if (self.workload_id is None) == (self.artifact_id is None):
            raise ValueError("give exactly one of workloadId and artifactId")
        if self.runtime is not None and self.artifact_id is None:
            raise ValueError("runtime: only with artifactId (a new candidate's runtime)")
        return self

    @model_validator(mode="after")
    def _analysis_sees_traffic(self) -> Self:
        check_analyses_see_traffic(self.steps)
        return self


class RolloutPromote(InputModel):
    full: bool = Field(
        False,
        description="Skip every remaining step: the candidate takes all traffic now. "
        "Otherwise the current pause or analysis ends and the next step begins.",
        examples=[True],
    )


class RolloutHistoryEntry(CamelModel):
    at: datetime
    event: str = Field(examples=["step_started"])
    message: str
    step: int | None = Field(description="Index of the step it concerns, from 0.")
    weight: int = Field(description="The candidate's weight after it.")
    actor: str


class RolloutPublic(CamelModel):
    id: str
    deployment_id: str
    stable_workload_id: str = Field(description="The workload traffic came from.")
    candidate_workload_id: str
    status: RolloutStatus = Field(
        description="`starting` until the candidate runs, `progressing` through the steps, "
        "`paused` by a caller until resumed, then `completed` (the candidate takes all "
        "traffic) or `aborted` (all traffic back on the stable workload)."
    )
    reason: str | None = Field(description="Why it was aborted, with the figures measured.")
    current_step: int | None = Field(description="Index of the step running now, from 0.")
    weight: int = Field(description="Percent of requests the candidate takes now.")
    steps: list[RolloutStep]
    ready_timeout_seconds: int
    keep_previous_seconds: int
    history: list[RolloutHistoryEntry] = Field(description="Every step and decision, in order.")
    requested_by: UserRef
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
