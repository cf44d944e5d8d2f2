"""The runtime interface: what the workload activities ask of a local engine or a cluster.

A `RunPlan` (models/plan.py) says what one generation of a workload should look like.

A `Supervisor` owns one generation for as long as an activity runs: each `tick()` brings the
containers toward the plan (create, adopt, restart, scale) and reports what it sees, and
`wait()` sleeps until there is something to do. Neither polls the engine: the local runtime
follows the engine's event stream and probes containers itself, like a kubelet; the
Kubernetes runtime follows a watch of the workload's pods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from models.plan import RunPlan
from models.status import ReplicaState

ProbeKind = Literal["startup", "readiness", "liveness"]

# Labels put on every object a runtime creates, so a restarted worker finds what exists.
LABEL_MANAGED = "workload-api.managed"
LABEL_WORKLOAD = "workload-api.workload"
LABEL_GROUP = "workload-api.group"
LABEL_REPLICA = "workload-api.replica"
LABEL_GENERATION = "workload-api.generation"
LABEL_CONTAINER = "workload-api.container"


class RestartPolicy(BaseModel):
    """How replicas are restarted, and when a crash loop becomes a failure of the workload."""

    backoff_initial_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(60.0, gt=0)
    crash_loop_limit: int = Field(
        5, ge=1, description="Restarts in a row without becoming ready before giving up."
    )


class ProbeResult(BaseModel):
    ok: bool
    message: str = ""
    checked_at: datetime
    changed_at: datetime


class ReplicaStatus(BaseModel):
    """What a runtime sees of one replica (a pod: the primary and its sidecars)."""

    group: str
    index: int
    generation: int
    name: str = Field(description="Runtime name of the replica (container or pod name).")
    state: ReplicaState
    ready: bool = False
    restarts: int = 0
    started_at: datetime | None = None
    address: str | None = Field(None, description="host:port where the primary port answers.")
    probes: dict[ProbeKind, ProbeResult] = Field(default_factory=dict)
    message: str = ""


class RuntimeEvent(BaseModel):
    """Something worth telling the user: a restart, a probe failure, a crash."""

    type: str = Field(examples=["replica_restarted"])
    message: str
    details: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    at: datetime = Field(default_factory=lambda: datetime.now(UTC), description="When seen.")


class Observation(BaseModel):
    replicas: list[ReplicaStatus]
    events: list[RuntimeEvent] = Field(default_factory=list)
    failure: str | None = Field(
        None,
        description="Set when the workload cannot run (crash loop, probe never passing, ...). "
        "Names the cause: exit code, last log lines, the probe that failed.",
    )

    def all_ready(self, plan: RunPlan) -> bool:
        wanted = sum(group.replicas for group in plan.groups)
        ready = [r for r in self.replicas if r.ready and r.generation == plan.generation]
        return len(ready) >= wanted


class LogLine(BaseModel):
    timestamp: datetime | None
    replica: str
    container: str
    stream: Literal["stdout", "stderr"]
    message: str


class Supervisor(Protocol):
    async def tick(self) -> Observation:
        """Move one step toward the plan and report. Raises `RuntimeUnavailableError` when the
        engine cannot be reached and `WorkloadFailedError` when the plan cannot run at all."""
        ...

    async def wait(self, at_most: float) -> bool:
        """Return True when the next tick has something to do (the runtime reported a
        change, a probe finished, a probe or restart fell due), False after `at_most` seconds
        of nothing."""
        ...

    async def close(self) -> None:
        """Release connections; leaves containers running."""
        ...


class Runtime(Protocol):
    name: str

    async def ping(self) -> None:
        """Raise `RuntimeUnavailableError` if the engine or cluster does not answer."""
        ...

    def supervisor(
        self,
        plan: RunPlan,
        secrets: Mapping[str, str],
        previous: list[ReplicaStatus],
    ) -> Supervisor:
        """A supervisor for `plan`; `previous` is the last status recorded in the catalog (for
        restart counts), `secrets` maps secret ids named in the plan to their values."""
        ...

    async def halt(self, workload_id: str) -> None:
        """Stop every container of the workload but keep them, so their logs stay readable."""
        ...

    async def remove(self, workload_id: str, *, keep_generation: int | None = None) -> int:
        """Remove the workload's containers (all, or all but one generation); return how many."""
        ...

    def logs(
        self,
        workload_id: str,
        *,
        replica: str | None = None,
        container: str | None = None,
        tail: int | None = None,
        since: datetime | None = None,
        follow: bool = False,
    ) -> AsyncIterator[LogLine]:
        """Container logs of the workload, oldest first; `follow` keeps streaming new lines."""
        ...

    async def cpu_utilization(self, workload_id: str) -> dict[str, float]:
        """Group name -> mean CPU use of its running replicas since the previous call, in
        percent of their CPU limit; groups with nothing to report yet are left out."""
        ...

    async def close(self) -> None: ...
