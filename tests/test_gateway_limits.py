"""Limits that keep one caller or one slow deployment from holding the whole gateway: a cap on
connections per replica with a bounded wait (503), and on concurrent calls per caller (429)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.gateway_world import (
    World,
    body_of,
    exchange,
    raw_upstream,
    read_request,
    request,
    sqlite_world,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with sqlite_world(tmp_path_factory.mktemp("gateway-limits")) as built:
        yield built


async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request after a second."""
    while True:
        await read_request(reader)
        await asyncio.sleep(1.0)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()


async def test_a_full_replica_makes_callers_wait_then_503(world: World) -> None:
    async with (
        raw_upstream(slow) as address,
        world.gateway(
            w1=[address],
            w2=[address.replace("127.0.0.1", "localhost")],
            gateway_max_connections_per_replica=1,
            gateway_acquire_timeout_seconds=0.2,
        ) as gw,
    ):
        first, second, elsewhere = await asyncio.gather(
            exchange(gw.port, request("GET", world.path(), world.token)),
            exchange(gw.port, request("GET", world.path(), world.token)),
            # Another deployment (another replica address) is not held up by d1's.
            exchange(gw.port, request("GET", world.path(name="d2"), world.token2)),
        )
        statuses = sorted(response[9:12] for response in (first, second))
        assert statuses == [b"200", b"503"]
        refused = first if first[9:12] == b"503" else second
        assert b"Retry-After: 1" in refused and "connection limit" in body_of(refused)["message"]
        assert elsewhere.startswith(b"HTTP/1.1 200")
        assert gw.gateway.metrics.failures["pool_timeout"] == 1


async def test_a_caller_over_its_limit_of_concurrent_calls_gets_429(world: World) -> None:
    async with (
        raw_upstream(slow) as address,
        world.gateway(w1=[address], gateway_max_calls_per_caller=2) as gw,
    ):
        calls = [exchange(gw.port, request("GET", world.path(), world.token)) for _ in range(3)]
        # Another caller is not limited by this one's calls.
        calls.append(exchange(gw.port, request("GET", world.path(), world.alice)))
        answers = await asyncio.gather(*calls)
        statuses = sorted(response[9:12] for response in answers[:3])
        assert statuses == [b"200", b"200", b"429"]
        assert answers[3].startswith(b"HTTP/1.1 200")
        refused = next(response for response in answers if response[9:12] == b"429")
        assert b"Retry-After: 1" in refused and body_of(refused)["code"] == "too_many_requests"
        # Once they have finished, the caller may call again.
        again = await exchange(gw.port, request("GET", world.path(), world.token))
        assert again.startswith(b"HTTP/1.1 200")
        assert gw.gateway.callers == {}
