"""How workloads rows of the catalog look on the wire."""

from __future__ import annotations

import ast

from fastapi import Request

from catalog.tables import Artifact, Workload, WorkloadEvent, WorkloadReplica
from models.autoscaling import AutoscalingPublic
from models.common import UserRef
from models.status import WorkloadStatus
from models.workloads import (
    ArtifactInfo,
    GroupRuntimePublic,
    GroupScaling,
    ProbeResultPublic,
    ReplicaPublic,
    ScalingDecision,
    WorkloadEventPublic,
    WorkloadOperation,
    WorkloadPublic,
    WorkloadRuntime,
    WorkloadRuntimePublic,
    WorkloadScaling,
)
from services.bundles import BundleCatalog
from services.workload_runtime import group_bundle


def invoke_url(request: Request, kind: str, resource_id: str) -> str:
    """Where the gateway (a process of its own, see WAPI_GATEWAY_URL) serves calls to it."""
    gateway: str = request.app.state.context.settings.public_gateway_url
    return f"{gateway}/api/v2/endpoints/{kind}/{resource_id}/"


def present_workload(
    request: Request, row: Workload, artifact: Artifact, bundles: BundleCatalog
) -> WorkloadPublic:
    runtime = WorkloadRuntime.model_validate(row.runtime)
    return WorkloadPublic(
        id=row.id,
        name=row.name,
        description=row.description,
        importance=row.importance,
        status=row.status,
        status_reason=row.status_reason,
        artifact_id=artifact.id,
        artifact=ArtifactInfo(
            id=artifact.id,
            name=artifact.name,
            type=artifact.type,
            status=artifact.status,
            version=artifact.version,
            collection_id=artifact.collection_id,
        ),
        runtime=WorkloadRuntimePublic(
            container_groups=[
                GroupRuntimePublic(
                    name=group.name,
                    replica_count=group.replica_count,
                    autoscaling=AutoscalingPublic.model_validate(group.autoscaling.model_dump())
                    if group.autoscaling
                    else None,
                    resource_bundles=group.resource_bundles,
                    resolved_bundle=group_bundle(group, bundles),
                    containers=group.containers,
                )
                for group in runtime.container_groups
            ]
        ),
        endpoint=invoke_url(request, "workloads", row.id),
        generation=row.generation,
        creator=UserRef(username=row.created_by),
        created_at=row.created_at,
        updated_at=row.updated_at,
        status_changed_at=row.status_changed_at,
    )


def present_operation(
    request: Request, workload_id: str, result_status: WorkloadStatus
) -> WorkloadOperation:
    return WorkloadOperation(
        status=result_status,
        workload_id=workload_id,
        track_via=f"{str(request.base_url).rstrip('/')}/api/v2/console/workloads/{workload_id}/",
    )


def present_workload_event(row: WorkloadEvent) -> WorkloadEventPublic:
    return WorkloadEventPublic(
        id=row.id,
        workload_id=row.workload_id,
        type=row.type,
        message=row.message,
        details=row.details,
        actor=row.actor,
        timestamp=row.created_at,
    )


def present_replica(row: WorkloadReplica) -> ReplicaPublic:
    return ReplicaPublic(
        name=row.name,
        group=row.group_name,
        index=row.replica_index,
        generation=row.generation,
        state=row.state,
        ready=row.ready,
        restarts=row.restarts,
        started_at=row.started_at,
        address=row.address,
        probes={kind: ProbeResultPublic.model_validate(r) for kind, r in row.probes.items()},
        message=row.message,
        updated_at=row.updated_at,
    )


def present_scaling(
    workload: Workload, replicas: list[WorkloadReplica], scalings: list[WorkloadEvent]
) -> WorkloadScaling:
    """Desired (the stored counts) against ready and reported replicas, per group, with the
    latest `scaled` event that named the group."""
    groups = []
    for group in WorkloadRuntime.model_validate(workload.runtime).container_groups:
        own = [r for r in replicas if r.group_name == group.name]
        decision = None
        for event in scalings:  # newest first
            counts = _scaled_counts(event)
            if group.name in counts:
                decision = ScalingDecision(
                    replicas=counts[group.name],
                    reason=event.details.get("reason"),
                    actor=event.actor,
                    at=event.created_at,
                )
                break
        groups.append(
            GroupScaling(
                name=group.name,
                desired_replicas=group.replica_count,
                ready_replicas=sum(1 for r in own if r.ready),
                reported_replicas=len(own),
                autoscaling=AutoscalingPublic.model_validate(group.autoscaling.model_dump())
                if group.autoscaling
                else None,
                last_decision=decision,
            )
        )
    return WorkloadScaling(workload_id=workload.id, status=workload.status, groups=groups)


def _scaled_counts(event: WorkloadEvent) -> dict[str, int]:
    """The counts a `scaled` event recorded (`str` of a dict of group name to count)."""
    try:
        counts = ast.literal_eval(str(event.details.get("replicas", "{}")))
    except (ValueError, SyntaxError):
        return {}
    if not isinstance(counts, dict):
        return {}
    return {str(k): int(v) for k, v in counts.items() if isinstance(v, int)}
