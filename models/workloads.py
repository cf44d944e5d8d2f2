"""Workloads on the wire: what runs an artifact, how many replicas, on which bundle."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from models.artifacts import Description, Name, ResourceId
from models.bundles import ResourceBundle
from models.common import CamelModel, InputModel, UserRef
from models.spec import SPEC_EXAMPLE, ArtifactSpec, ArtifactType, DnsLabel, EnvVar
from models.status import ArtifactStatus, WorkloadStatus

Importance = Literal["critical", "high", "moderate", "low"]
Quantity = Annotated[
    str, StringConstraints(max_length=32, pattern=r"^\s*\d+(\.\d+)?\s*[A-Za-z]*\s*$")
]


class ResourceAllocation(InputModel):
    cpu: float | None = Field(
        None, ge=0.01, le=512, description="CPU cores, fractions allowed; at most the bundle's."
    )
    memory: Quantity | None = Field(
        None,
        description="Whole bytes, e.g. `512Mi`, `2Gi`, `1G`; at least 6Mi, at most the bundle's.",
        examples=["1Gi"],
    )


class ContainerOverride(InputModel):
    """Per-container settings of this workload; `name` must match a container of the artifact."""

    name: DnsLabel
    resource_allocation: ResourceAllocation | None = None
    environment_vars: list[EnvVar] = Field(
        default_factory=list, max_length=256, description="Added to, or replacing, the artifact's."
    )


class GroupRuntime(InputModel):
    name: DnsLabel = Field("default", description="Matches a container group of the artifact.")
    replica_count: int = Field(1, ge=1, le=50)
    resource_bundles: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list,
        max_length=8,
        description="Candidate bundle ids; the first known one is used (none: the default "
        "bundle). It limits every container of the group; GPUs go to the primary container.",
        examples=[["cpu.small"]],
    )
    containers: list[ContainerOverride] = Field(default_factory=list, max_length=16)


class WorkloadRuntime(InputModel):
    container_groups: list[GroupRuntime] = Field(default_factory=list, max_length=16)


class InlineArtifact(InputModel):
    """An artifact defined in the request; the workload gets a draft of its own."""

    name: Name | None = Field(None, description="Defaults to the workload's name.")
    description: Description = ""
    type: ArtifactType = "generic"
    spec: ArtifactSpec = Field(examples=[SPEC_EXAMPLE])


class WorkloadCreate(InputModel):
    """Give exactly one of `artifactId` and `artifact`."""

    name: Name = Field(examples=["support-agent"])
    description: Description = ""
    importance: Importance = "low"
    artifact_id: ResourceId | None = Field(None, examples=["65f1c0ffee65f1c0ffee65f1"])
    artifact: InlineArtifact | None = None
    runtime: WorkloadRuntime = Field(
        default_factory=WorkloadRuntime,
        examples=[{"containerGroups": [{"replicaCount": 2, "resourceBundles": ["cpu.small"]}]}],
    )

    @model_validator(mode="after")
    def _one_artifact(self) -> WorkloadCreate:
        if (self.artifact_id is None) == (self.artifact is None):
            raise ValueError("give exactly one of 'artifactId' and 'artifact'")
        return self


class WorkloadUpdate(InputModel):
    """Metadata changes apply at once; replica counts scale a live workload; other runtime
    changes apply at the next start."""

    name: Name | None = Field(None, examples=["support-agent"])
    description: Description | None = None
    importance: Importance | None = None
    runtime: WorkloadRuntime | None = None


class ArtifactInfo(CamelModel):
    id: str
    name: str
    type: ArtifactType
    status: ArtifactStatus
    version: int | None
    collection_id: str | None


class GroupRuntimePublic(CamelModel):
    name: str
    replica_count: int
    resource_bundles: list[str]
    resolved_bundle: ResourceBundle = Field(
        description="The bundle every container of the group is limited by: the first known "
        "of `resourceBundles`, else the installation's default bundle."
    )
    containers: list[ContainerOverride]


class WorkloadPublic(CamelModel):
    id: str
    name: str
    description: str
    importance: Importance
    status: WorkloadStatus
    status_reason: str | None = Field(description="Why the workload is errored, when it is.")
    artifact_id: str
    artifact: ArtifactInfo
    runtime: list[GroupRuntimePublic] = Field(description="One entry per container group.")
    endpoint: str = Field(description="Invoke URL; always ends with '/'.")
    generation: int = Field(description="Increments on every start.")
    creator: UserRef
    created_at: datetime
    updated_at: datetime
    status_changed_at: datetime


class WorkloadOperation(CamelModel):
    status: WorkloadStatus
    workload_id: str
    track_via: str = Field(description="Poll this URL to follow the change.")


class WorkloadEventPublic(CamelModel):
    id: int
    workload_id: str
    type: str = Field(examples=["replica_restarted"])
    message: str
    details: dict[str, Any]
    actor: str
    timestamp: datetime


class ProbeResultPublic(CamelModel):
    ok: bool
    message: str
    checked_at: datetime
    changed_at: datetime


class ReplicaPublic(CamelModel):
    name: str
    group: str
    index: int
    generation: int
    state: str = Field(examples=["running"])
    ready: bool
    restarts: int
    started_at: datetime | None
    address: str | None
    probes: dict[str, ProbeResultPublic]
    message: str
    updated_at: datetime
