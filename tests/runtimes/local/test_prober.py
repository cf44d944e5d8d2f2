"""Probes run as tasks of their own: a hung probe does not hold up the other replicas'
probes, a finished probe wakes the supervisor, whose next tick collects it, and an answer
about a container that has restarted since is dropped. Against real HTTP servers on
loopback."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from models.plan import GroupPlan
from runtimes.local.naming import ReplicaKey
from runtimes.local.prober import Prober
from runtimes.local.replica import Replica
from tests.runtimes.local.conftest import container, probe
from tests.support.ports import free_port


async def http_server(delay: float) -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(delay)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", free_port())


def running_replica(index: int, host_port: int, timeout: int) -> Replica:
    plan = container("img", readiness_probe=probe(path="/ready", timeoutSeconds=timeout))
    group = GroupPlan(name="default", replicas=2, containers=[plan])
    replica = Replica.planned(ReplicaKey("w", 1, "default", index), group)
    member = replica.primary
    member.id, member.state = f"c{index}", "running"
    replica.ports = {8080: host_port}
    replica.reset_probes(member, now=0)
    return replica


async def test_a_hung_probe_does_not_hold_up_the_others() -> None:
    slow, fast = await http_server(delay=1.5), await http_server(delay=0)
    async with slow, fast:
        hung = running_replica(0, slow.sockets[0].getsockname()[1], timeout=5)
        healthy = running_replica(1, fast.sockets[0].getsockname()[1], timeout=5)
        answered = asyncio.Event()
        prober = Prober(cast(Any, None), "127.0.0.1", on_result=answered.set)
        try:
            prober.start_due([hung, healthy], now=0)
            await asyncio.wait_for(answered.wait(), 1.0)  # the fast one wakes the supervisor
            answered.clear()
            first = prober.collect()
            assert [(run.replica, run.outcome.ok) for run in first] == [(healthy, True)]
            for run in first:  # as the supervisor does: the next one is due a period later
                run.tracker.record(run.outcome, run.started)
            # Still in flight: not started twice, and not what the next wake waits for.
            prober.start_due([hung, healthy], now=0.5)
            assert prober.next_due([hung, healthy]) == first[0].tracker.next_due
            await asyncio.wait_for(answered.wait(), 3)
            second = prober.collect()
            assert [(run.replica, run.outcome.ok) for run in second] == [(hung, True)]
        finally:
            await prober.close()


async def test_an_answer_about_a_restarted_container_is_dropped() -> None:
    slow = await http_server(delay=0.5)
    async with slow:
        replica = running_replica(0, slow.sockets[0].getsockname()[1], timeout=5)
        answered = asyncio.Event()
        prober = Prober(cast(Any, None), "127.0.0.1", on_result=answered.set)
        try:
            prober.start_due([replica], now=0)
            assert prober.collect() == []
            replica.reset_probes(replica.primary, now=10)  # the container restarted
            await asyncio.wait_for(answered.wait(), 3)
            assert prober.collect() == []
        finally:
            await prober.close()
