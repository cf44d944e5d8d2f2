"""Catalog tables. Schema changes go through a migration in `migrations/versions/`.

Why one module of this length: the whole schema reads in one place, as the migrations build it.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    case,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column
from sqlalchemy.types import TypeDecorator

from models.api_keys import Role
from models.audit import ActorKind
from models.sharing import ResourceType, ShareRole
from models.spec import ArtifactType
from models.status import (
    DEPLOYMENT_STATUS_OF_WORKLOAD,
    ArtifactStatus,
    DeploymentStatus,
    HealthStatus,
    ReplacementStatus,
    ReplicaState,
    RolloutStatus,
    SwapStatus,
    WorkloadStatus,
)
from models.workloads import Importance

JSONType = JSON().with_variant(JSONB(), "postgresql")


def new_id() -> str:
    """A 24-hex-digit identifier, the shape the public API documents."""
    return secrets.token_hex(12)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
    }


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    username: Mapped[str] = mapped_column(String(100), index=True)
    role: Mapped[Role] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class ArtifactCollection(Base):
    __tablename__ = "artifact_collections"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[ArtifactType] = mapped_column(String(20))
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (
        UniqueConstraint("collection_id", "version", name="uq_artifacts_collection_version"),
        Index("ix_artifacts_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    type: Mapped[ArtifactType] = mapped_column(String(20), index=True)
    status: Mapped[ArtifactStatus] = mapped_column(String(20), index=True)
    version: Mapped[int | None] = mapped_column(Integer, default=None)
    collection_id: Mapped[str | None] = mapped_column(
        ForeignKey("artifact_collections.id"), index=True, default=None
    )
    spec: Mapped[dict[str, Any]]
    # Optimistic concurrency: every UPDATE checks and bumps it; it is also the ETag.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    registered_at: Mapped[datetime | None] = mapped_column(default=None)

    __mapper_args__ = {"version_id_col": revision}  # noqa: RUF012 (SQLAlchemy reads it as is)


class Workload(Base):
    """The read model of a workload. Its workflow writes status changes here first."""

    __tablename__ = "workloads"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    importance: Mapped[Importance] = mapped_column(String(20), default="low")
    artifact_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id"), index=True)
    status: Mapped[WorkloadStatus] = mapped_column(String(20), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    runtime: Mapped[dict[str, Any]]
    generation: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkloadReplica(Base):
    """What the runtime last reported of one replica; written by the supervising activity."""

    __tablename__ = "workload_replicas"

    workload_id: Mapped[str] = mapped_column(
        ForeignKey("workloads.id", ondelete="CASCADE"), primary_key=True
    )
    group_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    replica_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    state: Mapped[ReplicaState] = mapped_column(String(20))
    ready: Mapped[bool] = mapped_column(default=False)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    address: Mapped[str | None] = mapped_column(String(255), default=None)
    probes: Mapped[dict[str, Any]]
    message: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkloadEvent(Base):
    """Lifecycle events of a workload, in the order they happened."""

    __tablename__ = "workload_events"
    __table_args__ = (Index("ix_workload_events_workload_id_id", "workload_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    workload_id: Mapped[str] = mapped_column(String(24))
    type: Mapped[str] = mapped_column(String(50))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]
    actor: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Deployment(Base):
    """A stable, governed endpoint in front of exactly one registered workload."""

    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    importance: Mapped[Importance] = mapped_column(String(20), default="low")
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"), index=True)
    # The verdict of the health checks, written by the deployment's workflow.
    health_status: Mapped[HealthStatus] = mapped_column(String(20), index=True)
    health_reason: Mapped[str | None] = mapped_column(Text, default=None)
    health: Mapped[dict[str, Any]]
    # Invoke request bodies larger than this are refused (413); None: the gateway's default.
    max_body_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Read with the row from the workload traffic goes to, never stored: the lifecycle status
    # cannot drift from it. Not expired by a flush (an async session cannot load lazily).
    workload_status: Mapped[WorkloadStatus | None] = column_property(
        select(Workload.status).where(Workload.id == workload_id).scalar_subquery(),
        expire_on_flush=False,
    )
    workload_status_reason: Mapped[str | None] = column_property(
        select(Workload.status_reason).where(Workload.id == workload_id).scalar_subquery(),
        expire_on_flush=False,
    )
    status: Mapped[DeploymentStatus] = column_property(
        case(
            DEPLOYMENT_STATUS_OF_WORKLOAD,
            value=select(Workload.status).where(Workload.id == workload_id).scalar_subquery(),
            else_=literal("errored"),  # its workload is gone
        ),
        expire_on_flush=False,
    )


class ResourceRole(Base):
    """Sharing on every resource: `owner` changes, shares and deletes it, `user` reads and uses
    it, `consumer` only uses it. No foreign key: one table serves every kind of resource, and
    the services delete a resource's roles with it."""

    __tablename__ = "resource_roles"
    __table_args__ = (Index("ix_resource_roles_username_type", "username", "resource_type"),)

    resource_type: Mapped[ResourceType] = mapped_column(String(20), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    username: Mapped[str] = mapped_column(String(100), primary_key=True)
    role: Mapped[ShareRole] = mapped_column(String(20))
    granted_by: Mapped[str] = mapped_column(String(100))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


class InvokeToken(Base):
    """A token that may invoke one deployment and nothing else. Stored hashed."""

    __tablename__ = "invoke_tokens"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class DeploymentSwap(Base):
    """One attempt to move a deployment's traffic to another workload."""

    __tablename__ = "deployment_swaps"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    from_workload_id: Mapped[str] = mapped_column(String(24))
    to_workload_id: Mapped[str] = mapped_column(String(24))
    status: Mapped[SwapStatus] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    options: Mapped[dict[str, Any]]
    requested_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    switched_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class DeploymentRollout(Base):
    """A progressive move of a deployment's traffic to a candidate workload, step by step.
    `weight` is the candidate's share of requests now, which every gateway reads; `history`
    lists each step and decision as it happened."""

    __tablename__ = "deployment_rollouts"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    stable_workload_id: Mapped[str] = mapped_column(String(24))
    candidate_workload_id: Mapped[str] = mapped_column(String(24))
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    status: Mapped[RolloutStatus] = mapped_column(String(20), index=True)
    current_step: Mapped[int | None] = mapped_column(Integer, default=None)
    weight: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    options: Mapped[dict[str, Any]]
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    requested_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class WorkloadReplacement(Base):
    """An in-place replacement of a workload's artifact: a candidate workload made from the new
    artifact takes `weight` percent of the workload's own calls, step by step; at the end the
    workload restarts on the new artifact and the candidate goes. `history` lists each step."""

    __tablename__ = "workload_replacements"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    workload_id: Mapped[str] = mapped_column(
        ForeignKey("workloads.id", ondelete="CASCADE"), index=True
    )
    candidate_workload_id: Mapped[str] = mapped_column(String(24))
    candidate_artifact_id: Mapped[str] = mapped_column(String(24))
    previous_artifact_id: Mapped[str] = mapped_column(String(24))
    runtime: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    strategy: Mapped[str] = mapped_column(String(20), default="rolling")
    config: Mapped[dict[str, Any]]
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    status: Mapped[ReplacementStatus] = mapped_column(String(20), index=True)
    current_step: Mapped[int | None] = mapped_column(Integer, default=None)
    weight: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    requested_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    switched_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class DeploymentEvent(Base):
    """Lifecycle events of a deployment: health changes, swaps, sharing, tokens."""

    __tablename__ = "deployment_events"
    __table_args__ = (Index("ix_deployment_events_deployment_id_id", "deployment_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    deployment_id: Mapped[str] = mapped_column(String(24))
    type: Mapped[str] = mapped_column(String(50))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]
    actor: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HealthCheck(Base):
    """One health check of a deployment; only the newest few hundred are kept."""

    __tablename__ = "deployment_health_checks"
    __table_args__ = (Index("ix_deployment_health_checks_deployment_id_id", "deployment_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    deployment_id: Mapped[str] = mapped_column(String(24))
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool]
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    latency_ms: Mapped[float | None] = mapped_column(default=None)
    message: Mapped[str] = mapped_column(Text, default="")


class DeploymentTraffic(Base):
    """Calls through a deployment in one minute, as one gateway process counted them (each
    process keeps its own row, rewritten as the minute goes on): the stats route adds them up.
    `latency_histogram` maps a log-scale bucket (services/traffic.py) to its count of calls."""

    __tablename__ = "deployment_traffic"

    deployment_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True, index=True)
    writer: Mapped[str] = mapped_column(String(40), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)
    server_errors: Mapped[int] = mapped_column(Integer)
    user_errors: Mapped[int] = mapped_column(Integer)
    latency_sum_ms: Mapped[float]
    latency_max_ms: Mapped[float]
    latency_histogram: Mapped[dict[str, Any]]


class WorkloadTraffic(Base):
    """Calls through deployments to one workload in one minute, as one gateway process
    counted them: what a rollout's analysis compares (candidate against stable)."""

    __tablename__ = "workload_traffic"

    workload_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True, index=True)
    writer: Mapped[str] = mapped_column(String(40), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)
    server_errors: Mapped[int] = mapped_column(Integer)
    user_errors: Mapped[int] = mapped_column(Integer)
    latency_sum_ms: Mapped[float]
    latency_max_ms: Mapped[float]
    latency_histogram: Mapped[dict[str, Any]]


class GatewayDemand(Base):
    """What one gateway process sees of each workload's load, for the autoscaler: its calls
    in flight (averaged since its previous write) and its calls held at zero replicas, per
    workload id. One row per process, rewritten whole (services/demand.py); `reported_at`
    is its heartbeat, and a row older than a few seconds is a process that stopped."""

    __tablename__ = "gateway_demand"

    reporter: Mapped[str] = mapped_column(String(80), primary_key=True)
    reported_at: Mapped[datetime]
    in_flight: Mapped[dict[str, Any]]
    held: Mapped[dict[str, Any]]


class Secret(Base):
    """A secret value, encrypted at rest; only its metadata ever leaves the catalog."""

    __tablename__ = "secrets"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    ciphertext: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Append-only, hash-chained record of management actions and deployment invocations."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(100), index=True)
    actor_kind: Mapped[ActorKind] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(100), index=True)
    resource_type: Mapped[str] = mapped_column(String(50))
    resource_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    source_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    latency_ms: Mapped[float | None] = mapped_column(default=None)
    summary: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
