"""The deployment monitor against real (misbehaving) HTTP servers on loopback: it keeps
heartbeating while a check waits for its answer (a timeout may be longer than the activity's
heartbeat timeout), a check's timeout is a deadline for the whole answer even when the server
trickles bytes, and no catalog transaction is held during the check, so a management write
made meanwhile does not wait for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.deployments import DeploymentActivities
from catalog import database
from catalog.tables import Deployment, Workload
from models.deployments import DeploymentCreate, HealthSettings
from services import deployments
from tests.factories import ADMIN, artifact, ready_replica, registered_workload
from tests.support.ports import free_port
from workflows.deployment_contract import MonitorInput

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def upstream(handler: Handler) -> AsyncIterator[int]:
    async with await asyncio.start_server(handler, "127.0.0.1", free_port()) as server:
        yield server.sockets[0].getsockname()[1]


async def deployment_on(
    sessions: async_sessionmaker[AsyncSession], port: int, check_seconds: float
) -> str:
    """A deployment whose running workload's one ready replica answers on `port`."""
    async with sessions() as session, session.begin():
        workload = await registered_workload(session)
        health = HealthSettings(timeout_seconds=check_seconds, failure_threshold=1)
        deployment = await deployments.create_deployment(
            session, DeploymentCreate(name="d", workload_id=workload.id, health=health), ADMIN
        )
        row = await session.get(Workload, workload.id)
        assert row is not None
        row.status = "running"
        session.add(ready_replica(workload.id, f"127.0.0.1:{port}"))
    return deployment.id


async def test_monitor_heartbeats_through_a_slow_check(catalog_engine: AsyncEngine) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the check gives up and closes

    sessions = database.create_sessionmaker(catalog_engine)
    async with upstream(never_answer) as port:
        deployment_id = await deployment_on(sessions, port, check_seconds=2.5)
        heartbeats: list[object] = []
        env = ActivityEnvironment()
        env.on_heartbeat = lambda *details: heartbeats.append(details)
        activities = DeploymentActivities(sessions, cast(Any, None))
        result = await env.run(
            activities.monitor, MonitorInput(deployment_id=deployment_id, status="healthy")
        )
    assert result.status == "degraded"
    assert "timed out after 2.5s" in (result.reason or "")
    assert len(heartbeats) >= 2, "no heartbeat while the check waited"


async def test_a_trickling_endpoint_holds_no_lock_and_is_cut_at_its_timeout(
    catalog_engine: AsyncEngine, api: httpx.AsyncClient
) -> None:
    """An endpoint that sends its answer a byte every half second (20 s in all) once held
    SQLite's write lock for all of it, and every management write waited."""
    asked, closed = asyncio.Event(), asyncio.Event()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        asked.set()

        async def drip() -> None:
            for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.5)

        dripping = asyncio.create_task(drip())
        await reader.read()  # b"" once the check closes the connection
        closed.set()
        dripping.cancel()

    sessions = database.create_sessionmaker(catalog_engine)
    async with upstream(trickle) as port:
        deployment_id = await deployment_on(sessions, port, check_seconds=3)
        activities = DeploymentActivities(sessions, cast(Any, None))
        monitor = asyncio.create_task(
            ActivityEnvironment().run(
                # As a history recorded before migration 0008 says `healthy`.
                activities.monitor,
                MonitorInput(deployment_id=deployment_id, status="active"),
            )
        )
        await asyncio.wait_for(asked.wait(), 30)
        started = time.monotonic()
        written = await api.post("/api/v2/registry/artifacts/", json=artifact(name="meanwhile"))
        assert written.status_code == 201, written.text
        # The write did not wait for the check: its answer is still trickling in.
        assert not closed.is_set()
        # And the check gave up at its timeout (3 s), not after the 20 s of the answer.
        await asyncio.wait_for(closed.wait(), 15)
        assert time.monotonic() - started < 15
        result = await asyncio.wait_for(monitor, 30)
    assert result.status == "degraded"
    assert "timed out after 3s" in (result.reason or "")


async def test_the_verdict_goes_from_unknown_to_healthy_and_back(
    catalog_engine: AsyncEngine,
) -> None:
    """A new deployment is `unknown` until a check passes; while its workload does not run,
    nothing is checked and the verdict is `unknown` again, saying why."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    sessions = database.create_sessionmaker(catalog_engine)
    activities = DeploymentActivities(sessions, cast(Any, None))
    async with upstream(answer) as port:
        deployment_id = await deployment_on(sessions, port, check_seconds=5)
        async with sessions() as session:
            created = await session.get(Deployment, deployment_id)
            assert created is not None
            assert (created.status, created.health_status) == ("running", "unknown")
        found = await ActivityEnvironment().run(
            activities.monitor, MonitorInput(deployment_id=deployment_id, status="unknown")
        )
    assert (found.status, found.reason) == ("healthy", None)
    async with sessions() as session, session.begin():
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        workload = await session.get(Workload, deployment.workload_id)
        assert workload is not None
        workload.status = "stopped"
    lost = await ActivityEnvironment().run(
        activities.monitor, MonitorInput(deployment_id=deployment_id, status="healthy")
    )
    assert lost.status == "unknown"
    assert lost.reason == f"not checked: workload {deployment.workload_id} is stopped"
