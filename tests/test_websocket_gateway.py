"""WebSocket sessions through the gateway, over real sockets: the API served by uvicorn, a
replica that is a real aiohttp WebSocket server, a real client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from catalog import database
from catalog.tables import AuditEvent
from config.settings import Settings
from models.deployments import DeploymentCreate
from services import deployment_access, deployments
from tests.conftest import ADMIN_KEY
from tests.factories import ADMIN, ready_replica, registered_workload
from tests.support.live_server import serve
from tests.support.upstream import aiohttp_server, answering


async def replica_session(request: web.Request) -> web.WebSocketResponse:
    """Says what it saw of the handshake, then echoes; closes with 4000 on 'bye'."""
    ws = web.WebSocketResponse(protocols=["chat.v2"])
    await ws.prepare(request)
    seen = {
        "target": request.raw_path,
        "headers": {name.lower(): value for name, value in request.headers.items()},
    }
    await ws.send_str(json.dumps(seen))
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT and message.data == "bye":
            await ws.close(code=4000)
        elif message.type == aiohttp.WSMsgType.TEXT:
            await ws.send_str(f"echo {message.data}")
        elif message.type == aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(message.data[::-1])
    return ws


@dataclass
class World:
    url: str
    workload_id: str
    deployment_id: str
    token: str
    engine: AsyncEngine
    idle_workload_id: str  # no ready replica


@pytest.fixture
async def world(settings: Settings, catalog_engine: AsyncEngine) -> AsyncIterator[World]:
    async with aiohttp_server(answering(replica_session, method="GET")) as upstream:
        sessions = database.create_sessionmaker(catalog_engine)
        async with sessions() as session, session.begin():
            workload = await registered_workload(session)
            idle = await registered_workload(session, "idle")
            session.add(ready_replica(workload.id, upstream))
            deployment = await deployments.create_deployment(
                session, DeploymentCreate(name="d", workload_id=workload.id), ADMIN
            )
            _, token = await deployment_access.create_token(session, deployment.id, "t", "admin")
        with serve(create_app(settings)) as url:
            yield World(
                url.replace("http", "ws"),
                workload.id,
                deployment.id,
                token,
                catalog_engine,
                idle.id,
            )


async def test_a_session_through_a_deployment(world: World) -> None:
    url = f"{world.url}/api/v2/endpoints/deployments/{world.deployment_id}/chat/a%20b?room=1"
    async with (
        aiohttp.ClientSession() as client,
        client.ws_connect(
            url, headers={"Authorization": f"Bearer {world.token}"}, protocols=["chat.v2"]
        ) as ws,
    ):
        assert ws.protocol == "chat.v2"
        seen = json.loads(await ws.receive_str())
        assert seen["target"] == "/chat/a%20b?room=1"
        assert "authorization" not in seen["headers"]
        assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
        await ws.send_str("hello")
        assert await ws.receive_str() == "echo hello"
        await ws.send_bytes(b"abc")
        assert await ws.receive_bytes() == b"cba"
        await ws.send_str("bye")
        closing = await ws.receive()
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4000
    # The session is audited when it ends (the writer flushes every half second).
    sessions = database.create_sessionmaker(world.engine)
    for _ in range(40):
        async with sessions() as session:
            rows = list(
                await session.scalars(select(AuditEvent).where(AuditEvent.status_code == 101))
            )
        if rows:
            break
        await asyncio.sleep(0.1)
    assert [(r.action, r.summary["method"], r.actor_kind) for r in rows] == [
        ("deployment.invoke", "WEBSOCKET", "invoke_token")
    ]


async def test_a_session_through_a_workload(world: World) -> None:
    url = f"{world.url}/api/v2/endpoints/workloads/{world.workload_id}/x"
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with aiohttp.ClientSession() as client, client.ws_connect(url, headers=headers) as ws:
        json.loads(await ws.receive_str())
        await ws.send_str("hi")
        assert await ws.receive_str() == "echo hi"


@pytest.mark.parametrize(
    ("who", "status"), [(None, 401), ("wdt_not-a-token", 401), ("token-of-another", 403)]
)
async def test_refused_handshakes_get_the_http_status(
    world: World, who: str | None, status: int
) -> None:
    deployment = "nope00000000000000000000" if who == "token-of-another" else world.deployment_id
    token = world.token if who == "token-of-another" else who
    url = f"{world.url}/api/v2/endpoints/deployments/{deployment}/x"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(url, headers=headers)
    assert refused.value.status == status


async def test_no_ready_replica_is_a_503_with_retry_after(world: World) -> None:
    url = f"{world.url}/api/v2/endpoints/workloads/{world.idle_workload_id}/x"
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(url, headers=headers)
    assert refused.value.status == 503
    assert refused.value.headers is not None and refused.value.headers["Retry-After"] == "2"
