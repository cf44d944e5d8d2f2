"""WebSocket sessions through the gateway, over real sockets: the gateway on the catalog, a
replica that is a real aiohttp WebSocket server, a real client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog import database
from catalog.tables import AuditEvent, WorkloadReplica
from config.settings import Settings
from models.deployments import DeploymentCreate
from services import api_keys, deployment_access, deployments
from tests.conftest import ADMIN_KEY
from tests.factories import ADMIN, ready_replica, registered_workload
from tests.support.gateway import gateway_in_loop
from tests.support.gateway_world import exchange, raw_upstream, read_request, request
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
            await api_keys.ensure_admin_key(
                session, preset=ADMIN_KEY, key_file=settings.admin_key_file
            )
            workload = await registered_workload(session)
            idle = await registered_workload(session, "idle")
            session.add(ready_replica(workload.id, upstream))
            deployment = await deployments.create_deployment(
                session, DeploymentCreate(name="d", workload_id=workload.id), ADMIN
            )
            _, token = await deployment_access.create_token(session, deployment.id, "t", "admin")
        async with gateway_in_loop(settings, gateway_websocket_idle_seconds=1) as running:
            yield World(
                running.url.replace("http", "ws"),
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
        assert seen["headers"]["sec-websocket-protocol"] == "chat.v2"
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
    assert [(r.action, r.actor_kind, r.summary["count"]) for r in rows] == [
        ("deployment.invoke", "invoke_token", 1)
    ]
    [[_, _, path, _]] = rows[0].summary["calls"]
    assert (rows[0].summary["method"], path) == ("WEBSOCKET", "/chat/a%20b")


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


async def test_a_refused_handshake_is_relayed_then_closed(world: World) -> None:
    """The replica answers the handshake with an HTTP status: the caller gets it as is."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
        await writer.drain()

    async with raw_upstream(refuse) as address:
        sessions = database.create_sessionmaker(world.engine)
        async with sessions() as session, session.begin():
            await session.execute(
                delete(WorkloadReplica).where(WorkloadReplica.workload_id == world.idle_workload_id)
            )
            session.add(ready_replica(world.idle_workload_id, address))
        port = int(world.url.rsplit(":", 1)[1])
        raw = request(
            "GET",
            f"/api/v2/endpoints/workloads/{world.idle_workload_id}/ws",
            ADMIN_KEY,
            b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        )
        response = await exchange(port, raw, until_close=True)
        assert response.startswith(b"HTTP/1.1 403") and response.endswith(b"no")


async def test_an_idle_session_is_closed(world: World) -> None:
    """No traffic either way for the idle limit (1 s here): both sides are closed."""
    url = f"{world.url}/api/v2/endpoints/workloads/{world.workload_id}/x"
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        aiohttp.ClientSession() as client,
        client.ws_connect(url, headers=headers, autoping=False, heartbeat=None) as ws,
    ):
        json.loads(await ws.receive_str())
        closed = await asyncio.wait_for(ws.receive(), 10)
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
