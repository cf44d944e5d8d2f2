"""The gateway splits a deployment's calls during a rollout: the candidate's share is its
weight, a session key keeps a caller on one side in every gateway process, a candidate with
no ready replica takes nothing, and a split that ends (aborted) sends everything back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohttp import web
from sqlalchemy import delete

from api.gateway.split import Spreader, session_key, sticky_side
from catalog.tables import DeploymentRollout, WorkloadReplica
from tests.support.gateway import GatewayProcess
from tests.support.gateway_world import World, sqlite_world
from tests.support.ports import free_port
from tests.support.upstream import aiohttp_server, answering
from tests.test_gateway_processes import one_client_per_process, version


def speaking(name: str) -> web.Application:
    """A WebSocket replica that answers every message with its name."""

    async def session(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(f"{name}: {message.data}")
        return ws

    return answering(session, method="GET")


pytestmark = pytest.mark.timeout(180)


def test_calls_without_a_key_get_exactly_the_weight() -> None:
    spreader = Spreader()
    for weight in (0, 1, 10, 33, 50, 99, 100):
        picks = [spreader.candidate(f"d{weight}", weight) for _ in range(300)]
        assert sum(picks) == 3 * weight


def test_a_session_stays_on_its_side_and_stays_on_the_candidate_as_the_weight_grows() -> None:
    keys = [f"user-{n}".encode() for n in range(2000)]
    at = {w: {k for k in keys if sticky_side("r1", w, k)} for w in (0, 10, 50, 100)}
    assert at[0] == set() and at[100] == set(keys)
    assert at[10] <= at[50]
    assert 150 <= len(at[10]) <= 250 and 900 <= len(at[50]) <= 1100
    # Another rollout draws its own sessions.
    assert {k for k in keys if sticky_side("r2", 10, k)} != at[10]


def test_the_session_key_comes_from_the_header_or_the_cookie() -> None:
    cookie = [(b"Cookie", b"theme=dark; wapi_session=abc; x=1", b"cookie")]
    header = [(b"X-Wapi-Session", b"h1", b"x-wapi-session")]
    assert session_key(cookie) == b"abc"
    assert session_key([*cookie, *header]) == b"h1"
    assert session_key([(b"Cookie", b"other=1", b"cookie")]) is None
    assert session_key([]) is None


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with sqlite_world(tmp_path, gateway_port=free_port()) as built:
        yield built


async def split(world: World, weight: int, status: str = "progressing") -> None:
    async with world.sessions() as session, session.begin():
        row = await session.get(DeploymentRollout, "r1")
        if row is None:
            row = DeploymentRollout(
                id="r1", deployment_id=world.d1, stable_workload_id=world.w1,
                candidate_workload_id=world.workloads["w2"], steps=[], options={}, history=[],
                requested_by="admin",
            )  # fmt: skip
            session.add(row)
        row.weight, row.status = weight, status  # type: ignore[assignment]


async def spread(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], n: int
) -> Counter[str]:
    answers = Counter[str]()
    for _ in range(n):
        answer = await client.get(path, headers=headers)
        assert answer.status_code == 200, answer.text
        answers[answer.text] += 1
    return answers


async def settled(client: httpx.AsyncClient, path: str, headers: dict[str, str], want: str) -> None:
    """Until the process answers `want` (its route table has the change)."""
    deadline = time.monotonic() + 30
    while (await client.get(path, headers=headers)).text != want:
        assert time.monotonic() < deadline, f"still not {want}"
        await asyncio.sleep(0.05)


async def test_two_gateway_processes_split_by_weight_and_keep_sessions(
    world: World, tmp_path: Path
) -> None:
    gateway = GatewayProcess(world.settings, tmp_path / "gateway.log", processes=2)
    async with (
        aiohttp_server(answering(version("v1"))) as v1,
        aiohttp_server(answering(version("v2"))) as v2,
    ):
        await world.serve(w1=[v1], w2=[v2])
        gateway.start()
        clients: dict[int, httpx.AsyncClient] = {}
        try:
            await asyncio.to_thread(gateway.wait_ready)
            clients = await one_client_per_process(gateway.url, 2)
            path, token = world.path(rest="/version"), {"Authorization": f"Bearer {world.token}"}
            await split(world, 100)
            for client in clients.values():
                await settled(client, path, token, "v2")
            await split(world, 30)
            await asyncio.sleep(1.5)  # every process reloads its routes twice a second
            for client in clients.values():
                answers = await spread(client, path, token, 200)
                assert abs(answers["v2"] - 60) <= 3, answers  # 30 % of 200, give or take
            # A session key: the same side in both processes, every time.
            for n in range(20):
                keyed = {**token, "X-Wapi-Session": f"caller-{n}"}
                sides = {(await c.get(path, headers=keyed)).text for c in clients.values()}
                sides |= {(await c.get(path, headers=keyed)).text for c in clients.values()}
                assert len(sides) == 1, (n, sides)
            # The candidate loses its replica: it takes nothing, no call fails.
            async with world.sessions() as session, session.begin():
                await session.execute(
                    delete(WorkloadReplica).where(
                        WorkloadReplica.workload_id == world.workloads["w2"]
                    )
                )
            await asyncio.sleep(1.5)
            for client in clients.values():
                assert (await spread(client, path, token, 30)) == Counter({"v1": 30})
            # Aborted: all back on stable.
            await world.serve(w2=[v2])
            await split(world, 0, "aborted")
            await asyncio.sleep(1.5)
            for client in clients.values():
                assert (await spread(client, path, token, 30)) == Counter({"v1": 30})
        finally:
            for client in clients.values():
                await client.aclose()
            gateway.stop()
    log = (tmp_path / "gateway.log").read_text()
    assert "Traceback" not in log, log


async def test_a_websocket_session_stays_where_its_handshake_went(world: World) -> None:
    async with (
        aiohttp_server(speaking("v1")) as v1,
        aiohttp_server(speaking("v2")) as v2,
        world.gateway(w1=[v1], w2=[v2]) as running,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {world.token}"}) as client,
    ):
        url = running.url.replace("http", "ws") + world.path(rest="/chat")
        await split(world, 100)
        await asyncio.sleep(1.5)  # the route table follows
        async with client.ws_connect(url) as early:
            await early.send_str("hi")
            assert (await early.receive_str()) == "v2: hi"
            await split(world, 0, "aborted")
            await asyncio.sleep(1.5)
            async with client.ws_connect(url) as late:
                await late.send_str("hi")
                assert (await late.receive_str()) == "v1: hi"
            # The session opened at 100 % is still on the candidate.
            await early.send_str("still")
            assert (await early.receive_str()) == "v2: still"
