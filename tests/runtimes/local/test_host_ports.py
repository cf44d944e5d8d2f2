"""Host ports come from the publish range, never one a container publishes or a socket holds."""

from __future__ import annotations

import asyncio
import socket

import pytest

from runtimes.local.host_ports import HostPorts, HostPortsExhaustedError, bindable
from tests.support.ports import free_port


def four_ports(published: list[int] | None = None) -> HostPorts:
    """An allocator over four ports from `low`; `published(low)` are published ones."""
    low = free_port()
    while not all(bindable(low + offset) for offset in range(1, 4)):
        low = free_port()  # four ports in a row that nothing holds

    async def listed() -> list[int]:
        return [low + offset for offset in published or []]

    return HostPorts(low, low + 3, published=listed)


async def test_published_claimed_and_listening_ports_are_skipped() -> None:
    allocator = four_ports(published=[0])  # a container publishes the first port
    low = allocator.low
    with socket.socket() as held:
        held.bind(("127.0.0.1", low + 1))  # something listens on the second
        held.listen()
        first = await allocator.claim(1)
        second = await allocator.claim(1)
        assert sorted(first + second) == [low + 2, low + 3]
        with pytest.raises(HostPortsExhaustedError, match="WAPI_PUBLISH_PORT_RANGE"):
            await allocator.claim(1)


async def test_a_claim_of_several_ports_has_no_duplicates() -> None:
    allocator = four_ports()
    chosen = await allocator.claim(4)
    assert sorted(chosen) == list(range(allocator.low, allocator.low + 4))


async def test_a_burst_of_claims_lists_the_engine_once() -> None:
    lists = 0

    async def listed() -> list[int]:
        nonlocal lists
        lists += 1
        await asyncio.sleep(0.05)  # the engine takes a while to answer
        return []

    low = free_port()
    allocator = HostPorts(low, low + 999, published=listed)
    claimed = await asyncio.gather(*(allocator.claim(1) for _ in range(50)))
    assert lists == 1
    assert len({port for ports in claimed for port in ports}) == 50
