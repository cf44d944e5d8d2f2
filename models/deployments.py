"""Deployments on the wire: a stable, governed URL in front of one registered workload."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from models.artifacts import Description, Name, ResourceId
from models.common import CamelModel, InputModel, UserRef
from models.rollouts import RolloutPublic
from models.sharing import ShareRole
from models.status import DeploymentStatus, HealthStatus, SwapStatus
from models.workloads import Importance, WorkloadPublic

_IMPORTANCE_DOC = "As a workload's: orders what matters most under contention."


class HealthSettings(InputModel):
    path: Annotated[str, StringConstraints(pattern=r"^/", max_length=2048)] | None = Field(
        None,
        description="Path checked; defaults to the workload's readiness probe path, else '/'.",
        examples=["/healthz"],
    )
    interval_seconds: int = Field(10, ge=1, le=3600)
    timeout_seconds: float = Field(2.0, gt=0, le=60)
    failure_threshold: int = Field(3, ge=1, le=100, description="Failures in a row: degraded.")


MaxBodyBytes = Annotated[
    int | None,
    Field(
        ge=0,
        le=2**40,
        description="Invoke request bodies larger than this many bytes are refused with 413 "
        "before they reach the workload; null: the gateway's default "
        "(WAPI_GATEWAY_MAX_BODY_BYTES).",
        examples=[10485760],
    ),
]


class DeploymentCreate(InputModel):
    name: Name = Field(examples=["support-agent-prod"])
    description: Description = ""
    importance: Importance = Field("low", description=_IMPORTANCE_DOC)
    workload_id: ResourceId = Field(
        description="A workload whose artifact is registered.",
        examples=["65f1c0ffee65f1c0ffee65f1"],
    )
    health: HealthSettings = Field(default_factory=HealthSettings)
    max_body_bytes: MaxBodyBytes = None


class DeploymentUpdate(InputModel):
    """A field left out or null stays unchanged, except `maxBodyBytes`, where null means the
    gateway's default."""

    name: Name | None = Field(None, examples=["support-agent-prod"])
    description: Description | None = None
    importance: Importance | None = None
    health: HealthSettings | None = None
    max_body_bytes: MaxBodyBytes = None


class SwapCreate(InputModel):
    workload_id: ResourceId = Field(
        description="The registered workload to move traffic to.",
        examples=["65f1c0ffee65f1c0ffee65f2"],
    )
    ready_timeout_seconds: int = Field(
        300, ge=1, le=86400, description="Roll back if the candidate is not running by then."
    )
    keep_previous_seconds: int = Field(
        0, ge=0, le=86400, description="Keep the old workload running this long (rollback window)."
    )


class SwapPublic(CamelModel):
    id: str
    deployment_id: str
    from_workload_id: str
    to_workload_id: str
    status: SwapStatus
    reason: str | None
    ready_timeout_seconds: int
    keep_previous_seconds: int
    requested_by: UserRef
    created_at: datetime
    switched_at: datetime | None
    finished_at: datetime | None


class HealthPublic(HealthSettings):
    """The health-check settings, and the verdict of the checks (read-only: not sent back)."""

    status: HealthStatus = Field(
        description="`healthy`: the last check passed; `degraded`: `failureThreshold` checks "
        "in a row failed; `unknown`: nothing is checked (the workload is not running) or no "
        "check has run yet."
    )
    reason: str | None = Field(description="Why it is not `healthy`.")


class DeploymentPublic(CamelModel):
    id: str
    name: str
    description: str
    importance: Importance
    status: DeploymentStatus = Field(
        description="The lifecycle of the workload traffic goes to: `submitted`, "
        "`initializing` (not ready yet), `running`, `stopped` (also while stopping), "
        "`errored`. A swap in progress and the health verdict are in `swap` and `health`."
    )
    status_reason: str | None = Field(description="Why it is not `running`.")
    workload_id: str = Field(description="The workload traffic goes to now.")
    endpoint: str = Field(
        description="The stable invoke URL, served by the gateway; always ends with '/'."
    )
    health: HealthPublic
    swap: SwapPublic | None = Field(
        description="The swap in progress: `starting` until traffic moves, `switched` while "
        "the previous workload is kept; null when none is."
    )
    rollout: RolloutPublic | None = Field(
        None,
        description="The rollout in progress (`starting`, `progressing` or `paused`), with "
        "the candidate's weight now; null when none is.",
    )
    max_body_bytes: int | None = Field(
        description="Largest invoke request body; null: the gateway's default."
    )
    role: ShareRole | None = Field(description="Your role on this deployment.")
    creator: UserRef
    created_at: datetime
    updated_at: datetime
    workload: WorkloadPublic | None = Field(
        None,
        description="The workload traffic goes to, in lists asked with `workloadDetails=true` "
        "(null if it is not shared with you).",
    )


class HealthCheckPublic(CamelModel):
    checked_at: datetime
    ok: bool
    status_code: int | None
    latency_ms: float | None
    message: str


class Availability(CamelModel):
    window_seconds: int
    checks: int
    ok: int
    ratio: float | None = Field(description="ok / checks, or null without checks.")


class DeploymentHealth(CamelModel):
    status: HealthStatus
    reason: str | None = Field(description="Why it is not `healthy`.")
    last_check: HealthCheckPublic | None
    consecutive_failures: int
    availability: Availability
    recent: list[HealthCheckPublic] = Field(description="Newest first.")


class TokenCreate(InputModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        examples=["mobile-app"]
    )


class TokenPublic(CamelModel):
    id: str
    deployment_id: str
    name: str
    prefix: str = Field(description="The first characters, to recognise the token.")
    creator: UserRef
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="The token itself. It is shown this once and never again.")


class DeploymentEventPublic(CamelModel):
    id: int
    deployment_id: str
    type: str = Field(examples=["swap_switched"])
    message: str
    details: dict[str, object]
    actor: str
    timestamp: datetime
