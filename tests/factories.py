"""Request bodies and catalog rows used across tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import Workload, WorkloadReplica
from models.artifacts import ArtifactCreate
from models.workloads import InlineArtifact, WorkloadCreate
from services import artifacts, workloads
from services.api_keys import Principal
from services.bundles import BundleCatalog

ADMIN = Principal(key_id="test-admin", username="admin", role="admin")


def principal(username: str, role: str = "editor") -> Principal:
    """The caller an API key of `username` with global role `role` would be."""
    assert role in ("admin", "editor", "viewer")
    return Principal(key_id=f"test-{username}", username=username, role=role)  # type: ignore[arg-type]


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
        session, ArtifactCreate.model_validate(artifact(name=name, status="registered")), ADMIN
    )
    return await workloads.create_workload(
        session, WorkloadCreate(name=name, artifact_id=made.id), ADMIN, BundleCatalog.load()
    )


async def inline_workload(session: AsyncSession, name: str = "w") -> Workload:
    """A workload of its own draft artifact, written in `session`."""
    return await workloads.create_workload(
        session,
        WorkloadCreate(name=name, artifact=InlineArtifact.model_validate({"spec": spec()})),
        ADMIN,
        BundleCatalog.load(),
    )
