"""A run plan: what one generation of a workload runs, as the workflow hands it to a runtime.

It travels through Temporal histories, so it never holds secret values: environment variables
that come from secrets name the secret, and the activity resolves them just before it hands the
plan to a runtime.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from models.spec import Probe


class SecretEnv(BaseModel):
    """An environment variable whose value is the secret `secret_id` (resolved in activities)."""

    name: str
    secret_id: str


class ContainerPlan(BaseModel):
    name: str
    image: str
    primary: bool
    port: int | None = None
    entrypoint: list[str] | None = None
    command: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    secret_env: list[SecretEnv] = Field(default_factory=list)
    cpu: float | None = Field(None, description="CPU limit in cores.")
    memory_bytes: int | None = Field(None, description="Memory limit in bytes.")
    # Defaults, not None: plans recorded before these fields existed get the same limits.
    pids_limit: int = Field(1024, description="Processes and threads the container may have.")
    read_only_root: bool = Field(False, description="A read-only root filesystem.")
    gpu_count: int = 0
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    startup_probe: Probe | None = None


class GroupPlan(BaseModel):
    name: str
    replicas: int = Field(ge=0)
    containers: list[ContainerPlan]

    @property
    def primary(self) -> ContainerPlan:
        return next(c for c in self.containers if c.primary)


class RunPlan(BaseModel):
    """One generation of one workload. The first group is the entry point traffic goes to."""

    workload_id: str
    generation: int = Field(ge=1)
    groups: list[GroupPlan]
