"""The deployment monitor keeps heartbeating while a health check is still waiting for its
answer: a probe timeout may be longer than the activity's heartbeat timeout (10 s)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment

from activities.deployments import DeploymentActivities
from catalog import database
from catalog.tables import Workload
from models.deployments import DeploymentCreate, HealthSettings
from services import deployments
from tests.factories import ADMIN, ready_replica, registered_workload
from tests.support.ports import free_port
from workflows.deployment_contract import MonitorInput


async def test_monitor_heartbeats_through_a_slow_check(catalog_engine: AsyncEngine) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(60)

    sessions = database.create_sessionmaker(catalog_engine)
    async with await asyncio.start_server(never_answer, "127.0.0.1", free_port()) as server:
        port = server.sockets[0].getsockname()[1]
        async with sessions() as session, session.begin():
            workload = await registered_workload(session)
            health = HealthSettings(timeout_seconds=2.5, failure_threshold=1)
            deployment = await deployments.create_deployment(
                session, DeploymentCreate(name="d", workload_id=workload.id, health=health), ADMIN
            )
            row = await session.get(Workload, workload.id)
            assert row is not None
            row.status = "running"
            session.add(ready_replica(workload.id, f"127.0.0.1:{port}"))
        heartbeats: list[object] = []
        env = ActivityEnvironment()
        env.on_heartbeat = lambda *details: heartbeats.append(details)
        activities = DeploymentActivities(sessions, cast(Any, None))
        result = await env.run(
            activities.monitor, MonitorInput(deployment_id=deployment.id, status="active")
        )
    assert result.status == "degraded" and "ReadTimeout" in (result.reason or "")
    assert len(heartbeats) >= 2, "no heartbeat while the check waited"
