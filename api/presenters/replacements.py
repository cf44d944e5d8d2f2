"""How replacement rows of the catalog look on the wire."""

from __future__ import annotations

from catalog.tables import WorkloadReplacement
from models.common import UserRef
from models.replacements import ReplacementConfig, ReplacementPublic
from models.rollouts import RolloutHistoryEntry, RolloutStep
from models.workloads import WorkloadRuntime


def present_replacement(row: WorkloadReplacement) -> ReplacementPublic:
    return ReplacementPublic(
        id=row.id,
        workload_id=row.workload_id,
        candidate_artifact_id=row.candidate_artifact_id,
        previous_artifact_id=row.previous_artifact_id,
        candidate_workload_id=row.candidate_workload_id,
        status=row.status,
        strategy="rolling",
        config=ReplacementConfig.model_validate(row.config),
        runtime=None if row.runtime is None else WorkloadRuntime.model_validate(row.runtime),
        steps=[RolloutStep.model_validate(step) for step in row.steps],
        current_step=row.current_step,
        weight=row.weight,
        message=row.message,
        history=[RolloutHistoryEntry.model_validate(line) for line in row.history],
        requested_by=UserRef(username=row.requested_by),
        created_at=row.created_at,
        updated_at=row.updated_at,
        switched_at=row.switched_at,
        finished_at=row.finished_at,
    )
