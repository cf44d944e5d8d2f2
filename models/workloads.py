"""Workloads on the wire: what runs an artifact, how many replicas, on which bundle."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from models.artifacts import Description, Name, ResourceId
from models.autoscaling import AUTOSCALING_EXAMPLE, MAX_REPLICAS, Autoscaling, AutoscalingPublic
from models.bundles import ResourceBundle
from models.common import CamelModel, InputModel, UserRef
from models.spec import SPEC_EXAMPLE, ArtifactSpec, ArtifactType, DnsLabel, EnvVar, Memory
from models.status import ArtifactStatus, WorkloadStatus

Importance = Literal["critical", "high", "moderate", "low"]


class ResourceAllocation(InputModel):
    cpu: float | None = Field(
        None, ge=0.01, le=512, description="CPU cores, fractions allowed; at most the bundle's."
    )
    memory: Memory | None = Field(
        None,
        description="Bytes, as a number or a quantity such as `512Mi`, `2Gi`, `1G`; at least "
        "6Mi, at most the bundle's.",
        examples=["1Gi", 1073741824],
    )


class ContainerOverride(InputModel):
    """Per-container settings of this workload; `name` must match a container of the artifact."""

    name: DnsLabel
    resource_allocation: ResourceAllocation | None = None
    environment_vars: list[EnvVar] = Field(
        default_factory=list, max_length=256, description="Added to, or replacing, the artifact's."
    )


BundleRef = Annotated[str, StringConstraints(max_length=64)]
_REPLICAS_DOC = "A fixed number of replicas; not together with enabled `autoscaling`."


class GroupRuntime(InputModel):
    name: DnsLabel = Field("default", description="Matches a container group of the artifact.")
    # Before `replica_count`, whose check reads it.
    autoscaling: Autoscaling | None = Field(None, examples=[AUTOSCALING_EXAMPLE])
    replica_count: int = Field(
        1, ge=0, le=MAX_REPLICAS, description=_REPLICAS_DOC, json_schema_extra={"minimum": 1}
    )
    resource_bundles: list[BundleRef] = Field(
        default_factory=list,
        max_length=8,
        description="Candidate bundle ids; the first known one is used (none: the default "
        "bundle). It limits every container of the group; GPUs go to the primary container.",
        examples=[["cpu.small"]],
    )
    containers: list[ContainerOverride] = Field(default_factory=list, max_length=16)

    @field_validator("replica_count")
    @classmethod
    def _at_least_one(cls, value: int, info: ValidationInfo) -> int:
        """0 only for a group the autoscaler took to zero (as stored); asked for, at least 1."""
        scaling = info.data.get("autoscaling")
        if value < 1 and not (isinstance(scaling, Autoscaling) and scaling.enabled):
            raise ValueError(
                "must be at least 1; to run no replica while idle, enable autoscaling with "
                "minReplicaCount 0"
            )
        return value


class BundleResource(InputModel):
    """A resource bundle in the short form's `resources`."""

    type: Literal["resource_bundle"]
    resource_bundle_id: BundleRef = Field(examples=["cpu.small"])


SHORT_FORM = frozenset({"replica_count", "resources", "autoscaling"})


class WorkloadRuntime(InputModel):
    """Settings per container group (`containerGroups`), or, for an artifact with one
    container group, the short form: that group's `replicaCount`, `resources` and
    `autoscaling` at the top. Workloads are stored and shown with `containerGroups`."""

    container_groups: list[GroupRuntime] = Field(default_factory=list, max_length=16)
    replica_count: int | None = Field(
        None, ge=1, le=MAX_REPLICAS, description=f"Short form. {_REPLICAS_DOC}"
    )
    resources: list[BundleResource] | None = Field(
        None, max_length=8, description="Short form: the group's resource bundles, in order."
    )
    autoscaling: Autoscaling | None = Field(None, description="Short form: the group's.")

    @property
    def short_form(self) -> bool:
        return bool(self.model_fields_set & SHORT_FORM)

    def as_group(self, name: str) -> GroupRuntime:
        """The short form as the settings of the group `name`."""
        fields: dict[str, Any] = {
            "name": name,
            "resource_bundles": [r.resource_bundle_id for r in self.resources or []],
        }
        if self.replica_count is not None:
            fields["replica_count"] = self.replica_count
        if self.autoscaling is not None:
            fields["autoscaling"] = self.autoscaling
        return GroupRuntime(**fields)


RUNTIME_EXAMPLES = [
    {"containerGroups": [{"replicaCount": 2, "resourceBundles": ["cpu.small"]}]},
    {
        "replicaCount": 2,
        "resources": [{"type": "resource_bundle", "resourceBundleId": "cpu.small"}],
    },
]


class InlineArtifact(InputModel):
    """An artifact defined in the request, of the workload's own."""

    name: Name | None = Field(None, description="Defaults to the workload's name.")
    description: Description = ""
    type: ArtifactType = "generic"
    status: ArtifactStatus = Field(
        "draft",
        description="`draft`: a draft of the workload's own; `registered`: version 1 of a new "
        "collection, so the workload can be deployed.",
    )
    spec: ArtifactSpec = Field(examples=[SPEC_EXAMPLE])


class WorkloadCreate(InputModel):
    """Give exactly one of `artifactId` and `artifact`."""

    name: Name = Field(examples=["support-agent"])
    description: Description = ""
    importance: Importance = "low"
    artifact_id: ResourceId | None = Field(None, examples=["65f1c0ffee65f1c0ffee65f1"])
    artifact: InlineArtifact | None = None
    runtime: WorkloadRuntime = Field(default_factory=WorkloadRuntime, examples=RUNTIME_EXAMPLES)

    @model_validator(mode="after")
    def _one_artifact(self) -> WorkloadCreate:
        if (self.artifact_id is None) == (self.artifact is None):
            raise ValueError("give exactly one of 'artifactId' and 'artifact'")
        return self


class WorkloadUpdate(InputModel):
    """Metadata changes apply at once; replica counts scale a live workload; other runtime
    changes apply at the next start. A field left out or null stays unchanged."""

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
    replica_count: int = Field(
        description="Replicas wanted now; with autoscaling, the autoscaler's latest decision "
        "(0: scaled to zero, the next call starts one)."
    )
    autoscaling: AutoscalingPublic | None
    resource_bundles: list[str]
    resolved_bundle: ResourceBundle = Field(
        description="The bundle every container of the group is limited by: the first known "
        "of `resourceBundles`, else the installation's default bundle."
    )
    containers: list[ContainerOverride]

    @property
    def autoscaled(self) -> bool:
        return self.autoscaling is not None and self.autoscaling.enabled

    def as_input(self, replica_count: int | None = None) -> GroupRuntime:
        """These settings as an edit sends them back: with `replica_count` if given (or the
        current count), except for an autoscaled group, whose count the autoscaler owns."""
        fields: dict[str, Any] = {
            "name": self.name,
            "resource_bundles": self.resource_bundles,
            "containers": self.containers,
        }
        if self.autoscaling is not None:
            fields["autoscaling"] = Autoscaling.model_validate(self.autoscaling.model_dump())
        if not self.autoscaled:
            fields["replica_count"] = self.replica_count if replica_count is None else replica_count
        return GroupRuntime(**fields)


class WorkloadRuntimePublic(CamelModel):
    container_groups: list[GroupRuntimePublic] = Field(
        description="One entry per container group of the artifact."
    )


class WorkloadPublic(CamelModel):
    id: str
    name: str
    description: str
    importance: Importance
    status: WorkloadStatus
    status_reason: str | None = Field(description="Why the workload is errored, when it is.")
    artifact_id: str
    artifact: ArtifactInfo
    runtime: WorkloadRuntimePublic
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


class ScalingDecision(CamelModel):
    """The latest change of a group's replica count, by hand or by the autoscaler."""

    replicas: int
    reason: str | None = Field(description="The autoscaler's reason (none for a manual scale).")
    actor: str = Field(examples=["autoscaler"])
    at: datetime


class GroupScaling(CamelModel):
    name: str
    desired_replicas: int = Field(
        description="Replicas the group should run now (0: scaled to zero, the next call "
        "starts one)."
    )
    ready_replicas: int = Field(description="Replicas passing readiness, taking calls.")
    reported_replicas: int = Field(description="Replicas the runtime reports, in any state.")
    autoscaling: AutoscalingPublic | None
    last_decision: ScalingDecision | None


class WorkloadScaling(CamelModel):
    """Desired against actual replicas per container group, and why the count is what it is."""

    workload_id: str
    status: WorkloadStatus
    groups: list[GroupScaling]
