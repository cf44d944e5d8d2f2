"""Request bodies and catalog rows used across tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import Workload, WorkloadReplica
from models.artifacts import ArtifactCreate
from models.workloads import WorkloadCreate
from services import artifacts, workloads
from services.bundles import BundleCatalog


def spec(image: str = "registry.example.com/team/app:1", **container: Any) -> dict[str, Any]:
    return {
        "containerGroups": [
            {"containers": [{"imageUri": image, "port": 8080, **container}]},
        ]
    }


def artifact(name: str = "app", **fields: Any) -> dict[str, Any]:
    return {"name": name, "spec": spec(), **fields}


def ready_replica(workload_id: str, address: str) -> WorkloadReplica:
    """What the supervisor records for a replica that passes its readiness probe."""
    return WorkloadReplica(
        workload_id=workload_id,
        group_name="default",
        replica_index=0,
        generation=1,
        name="replica",
        state="running",
        ready=True,
        address=address,
        probes={},
    )


async def registered_workload(session: AsyncSession, name: str = "w") -> Workload:
    """A workload of a registered artifact (deployable), written in `session`."""
    made = await artifacts.create_artifact(
        session, ArtifactCreate.model_validate(artifact(name=name, status="registered")), "admin"
    )
    return await workloads.create_workload(
        session, WorkloadCreate(name=name, artifact_id=made.id), "admin", BundleCatalog.load()
    )
