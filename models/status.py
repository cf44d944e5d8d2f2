"""The status vocabularies shared by the wire, the catalog and the workflows."""

from __future__ import annotations

from typing import Literal

ArtifactStatus = Literal["draft", "registered"]
WorkloadStatus = Literal["submitted", "initializing", "running", "stopping", "stopped", "errored"]
# A deployment's status is its lifecycle, read from the workload traffic goes to (a swap in
# progress and the health verdict are fields of their own).
DeploymentStatus = Literal["submitted", "initializing", "running", "stopped", "errored"]
DEPLOYMENT_STATUS_OF_WORKLOAD: dict[WorkloadStatus, DeploymentStatus] = {
    "submitted": "submitted",
    "initializing": "initializing",
    "running": "running",
    "stopping": "stopped",
    "stopped": "stopped",
    "errored": "errored",
}
# The verdict of a deployment's health checks: `unknown` while nothing is checked (the
# workload is not running, or no check has run yet).
HealthStatus = Literal["healthy", "degraded", "unknown"]
SwapStatus = Literal["starting", "switched", "completed", "rolled_back", "cancelled"]
# A rollout: `starting` until its candidate runs, `progressing` through its steps, `paused` by
# a caller, then `completed` (traffic on the candidate) or `aborted` (traffic on stable).
RolloutStatus = Literal["starting", "progressing", "paused", "completed", "aborted"]
ROLLOUT_ACTIVE: tuple[RolloutStatus, ...] = ("starting", "progressing", "paused")
# An in-place replacement of a workload's artifact: `initializing` until its candidate runs
# (and is warmed up), `progressing` through its steps, `finalizing` while the candidate holds
# all traffic and the workload restarts on the new artifact, then `completed`, `cancelled` or
# `errored` (a failed analysis, or a candidate that did not run).
ReplacementStatus = Literal[
    "initializing", "progressing", "finalizing", "completed", "cancelled", "errored"
]
REPLACEMENT_ACTIVE: tuple[ReplacementStatus, ...] = ("initializing", "progressing", "finalizing")
ReplicaState = Literal["pending", "starting", "running", "crashed", "terminated"]
