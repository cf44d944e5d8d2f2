"""The gateway as it runs in production: `wapi gateway --processes 2`, two processes sharing one
port (SO_REUSEPORT), each with its own caches. A revocation and a swap written to the catalog
reach both (within a second: every cache and the route table live half a second at most, checked
from the gateway a test builds with the code production runs); their metrics add up; their
audit records make one chain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from sqlalchemy import select

from catalog.tables import Deployment, InvokeToken
from services import audit, deployment_access
from tests.support.gateway import GatewayProcess, gateway_in_loop
from tests.support.gateway_world import World, sqlite_world
from tests.support.ports import free_port
from tests.support.upstream import aiohttp_server, answering

pytestmark = pytest.mark.timeout(120)
PROMISE = 1.0  # seconds: a change in the catalog reaches every gateway process within this
WITHIN = 30.0  # seconds a test waits for it on a loaded machine (the promise is checked apart)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with sqlite_world(tmp_path, gateway_port=free_port()) as built:
        yield built


def version(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=name)

    return answer


async def one_client_per_process(url: str, processes: int) -> dict[int, httpx.AsyncClient]:
    """Kept-alive connections, one to each process: a connection stays with the process that
    accepted it, and the kernel spreads new ones over the processes."""
    found: dict[int, httpx.AsyncClient] = {}
    for _ in range(200):
        client = httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=1))
        pid = (await client.get("/healthz")).json()["process"]
        if pid in found:
            await client.aclose()
        else:
            found[pid] = client
        if len(found) == processes:
            return found
    raise AssertionError(f"new connections reached only {sorted(found)}")


async def until(
    clients: dict[int, httpx.AsyncClient],
    path: str,
    headers: dict[str, str],
    done: Callable[[httpx.Response], bool],
) -> set[int]:
    """The processes that answered `done` within `WITHIN` seconds, polled every 20 ms."""
    deadline = time.monotonic() + WITHIN
    seen: set[int] = set()
    while len(seen) < len(clients) and time.monotonic() < deadline:
        for pid, client in clients.items():
            if pid not in seen and done(await client.get(path, headers=headers)):
                seen.add(pid)
        await asyncio.sleep(0.02)
    return seen


async def test_nothing_the_gateway_remembers_outlives_half_a_second(world: World) -> None:
    # Built as `wapi gateway` builds each process: a change in the catalog is seen after at most
    # one cache lifetime plus one route reload, so within PROMISE.
    async with gateway_in_loop(world.settings) as running:
        access = running.gateway.access
        directory, credentials = access.directory, access.credentials
        lifetimes = [
            directory.interval,
            credentials.keys.ttl,
            credentials.tokens.ttl,
            access._permissions.ttl,  # roles on deployments
        ]
    assert max(lifetimes) + directory.interval <= PROMISE, lifetimes


async def test_a_revocation_and_a_swap_reach_both_processes(world: World, tmp_path: Path) -> None:
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
            admin = {"Authorization": f"Bearer {world.admin}"}
            for client in clients.values():
                assert (await client.get(path, headers=token)).text == "v1"

            # The swap's one write: the deployment now routes to w2.
            async with world.sessions() as session, session.begin():
                row = await session.get(Deployment, world.d1)
                assert row is not None
                row.workload_id = world.workloads["w2"]
            swapped = await until(clients, path, admin, lambda r: r.text == "v2")

            async with world.sessions() as session, session.begin():
                digest = deployment_access.hash_token(world.token)
                token_id = await session.scalar(
                    select(InvokeToken.id).where(InvokeToken.token_hash == digest)
                )
                assert token_id is not None
                await deployment_access.revoke_token(session, world.d1, token_id, "admin")
            revoked = await until(clients, path, token, lambda r: r.status_code == 401)

            assert swapped == revoked == set(clients), (swapped, revoked)

            # Either process answers /metrics with the calls of both.
            await asyncio.sleep(1.2)  # each saves its counters once a second
            calls = await asyncio.gather(
                *(client.get("/metrics", headers=admin) for client in clients.values())
            )
            served = [
                line
                for line in calls[0].text.splitlines()
                if line.startswith(
                    f'wapi_deployment_requests_total{{deployment="{world.d1}",status_class="2xx"}}'
                )
            ]
            total = float(served[0].split()[-1])
            assert total >= 4  # two v1 calls, at least one v2 call per process
        finally:
            for client in clients.values():
                await client.aclose()
            gateway.stop()
    log = (tmp_path / "gateway.log").read_text()
    assert "Traceback" not in log, log
    async with world.sessions() as session:
        assert (await audit.verify(session)).valid  # both processes wrote to one chain
