"""The status vocabularies shared by the wire, the catalog and the workflows."""

from __future__ import annotations

from typing import Literal

ArtifactStatus = Literal["draft", "registered"]
WorkloadStatus = Literal["submitted", "initializing", "running", "stopping", "stopped", "errored"]
DeploymentStatus = Literal["active", "degraded", "inactive", "swapping"]
SwapStatus = Literal["starting", "switched", "completed", "rolled_back", "cancelled"]
ReplicaState = Literal["pending", "starting", "running", "crashed", "terminated"]
