"""Probes run as tasks of their own: a hung probe does not hold up the tick (nor the other
replicas' probes), its answer is collected by a later tick, and an answer about a container
that has restarted since is dropped. Against real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from models.plan import GroupPlan
from runtimes.local.naming import ReplicaKey
from runtimes.local.prober import Prober
from runtimes.local.replica import Replica
from tests.runtimes.local.conftest import container, probe
from tests.support.ports import free_port


async def http_server(
    gate: asyncio.Event | None = None, answered: list[int] | None = None
) -> asyncio.Server:
    """Answers 200 once `gate` is set (at once without one); counts answers in `answered`."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if gate is not None:
            await gate.wait()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()
        if answered is not None:
            answered.append(1)

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


async def test_a_hung_probe_does_not_hold_up_the_tick() -> None:
    # The hung server answers only once the test lets it, after the first tick has returned:
    # a tick that waited for every probe would never return (or return the hung probe failed).
    release = asyncio.Event()
    slow, fast = await http_server(release), await http_server()
    async with slow, fast:
        hung = running_replica(0, slow.sockets[0].getsockname()[1], timeout=600)
        healthy = running_replica(1, fast.sockets[0].getsockname()[1], timeout=600)
        prober = Prober(cast(Any, None), "127.0.0.1")
        try:
            # `wait` is generous for a loaded machine; the healthy probe is in well within it.
            first = await asyncio.wait_for(prober.run_due([hung, healthy], now=0, wait=3), 60)
            assert [(run.replica, run.outcome.ok) for run in first] == [(healthy, True)]
            for run in first:  # as the supervisor does: the next one is due a period later
                run.tracker.record(run.outcome, run.started)
            # Still in flight: not started twice, collected once it answers.
            release.set()
            second = await prober.run_due([hung, healthy], now=0.5, wait=60)
            assert [(run.replica, run.outcome.ok) for run in second] == [(hung, True)]
        finally:
            await prober.close()


async def test_an_answer_about_a_restarted_container_is_dropped() -> None:
    release, answered = asyncio.Event(), list[int]()
    slow = await http_server(release, answered)
    async with slow:
        replica = running_replica(0, slow.sockets[0].getsockname()[1], timeout=600)
        prober = Prober(cast(Any, None), "127.0.0.1")
        try:
            assert await prober.run_due([replica], now=0, wait=0.05) == []
            replica.reset_probes(replica.primary, now=10)  # the container restarted
            release.set()
            # The old probe's answer comes in during this tick (it waits for it) and is dropped.
            assert await prober.run_due([replica], now=1, wait=60) == []
            assert answered == [1]
        finally:
            await prober.close()
