"""How rollout rows of the catalog look on the wire."""

from __future__ import annotations

from catalog.tables import DeploymentRollout
from models.common import UserRef
from models.rollouts import RolloutHistoryEntry, RolloutPublic, RolloutStep


def present_rollout(row: DeploymentRollout) -> RolloutPublic:
    return RolloutPublic(
        id=row.id,
        deployment_id=row.deployment_id,
        stable_workload_id=row.stable_workload_id,
        candidate_workload_id=row.candidate_workload_id,
        status=row.status,
        reason=row.reason,
        current_step=row.current_step,
        weight=row.weight,
        steps=[RolloutStep.model_validate(step) for step in row.steps],
        ready_timeout_seconds=int(row.options.get("readyTimeoutSeconds", 0)),
        keep_previous_seconds=int(row.options.get("keepPreviousSeconds", 0)),
        history=[RolloutHistoryEntry.model_validate(line) for line in row.history],
        requested_by=UserRef(username=row.requested_by),
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
    )
