"""The deployment monitor keeps heartbeating while a health check is still waiting for its
answer: a probe timeout may be longer than the activity's heartbeat timeout (10 s)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from temporalio.testing import ActivityEnvironment

from tests.factories import artifact
from workload_api.activities.deployments import DeploymentActivities
from workload_api.catalog import database
from workload_api.catalog.tables import Workload, WorkloadReplica
from workload_api.models.artifacts import ArtifactCreate
from workload_api.models.deployments import DeploymentCreate, HealthSettings
from workload_api.models.workloads import WorkloadCreate
from workload_api.payloads.deployments import MonitorInput
from workload_api.services import artifacts, deployments, workloads
from workload_api.services.bundles import BundleCatalog

PROBE_TIMEOUT = 2.5


async def test_monitor_heartbeats_through_a_slow_check(catalog_url: str) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(60)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = database.create_engine(catalog_url)
    sessions = database.create_sessionmaker(engine)
    try:
        await database.migrate(engine)
        async with sessions() as session, session.begin():
            made = await artifacts.create_artifact(
                session, ArtifactCreate.model_validate(artifact(status="registered")), "admin"
            )
            workload = await workloads.create_workload(
                session,
                WorkloadCreate(name="w", artifact_id=made.id),
                "admin",
                BundleCatalog.load(),
            )
            deployment = await deployments.create_deployment(
                session,
                DeploymentCreate(
                    name="d",
                    workload_id=workload.id,
                    health=HealthSettings(timeout_seconds=PROBE_TIMEOUT, failure_threshold=1),
                ),
                "admin",
            )
            row = await session.get(Workload, workload.id)
            assert row is not None
            row.status = "running"
            session.add(
                WorkloadReplica(
                    workload_id=workload.id,
                    group_name="default",
                    replica_index=0,
                    generation=1,
                    name="r",
                    state="running",
                    ready=True,
                    address=f"127.0.0.1:{port}",
                    probes={},
                )
            )
        heartbeats: list[float] = []
        env = ActivityEnvironment()
        env.on_heartbeat = lambda *_: heartbeats.append(asyncio.get_running_loop().time())
        activities = DeploymentActivities(sessions, cast(Any, None))
        result = await env.run(
            activities.monitor, MonitorInput(deployment_id=deployment.id, status="active")
        )
        assert result.status == "degraded" and "ReadTimeout" in (result.reason or "")
        assert len(heartbeats) >= 2, "no heartbeat while the check waited"
    finally:
        server.close()
        await engine.dispose()
