"""Runs the probes of a supervisor's replicas, each at its own period, as tasks of their own.

A probe runs as a kubelet runs it: started when due, concurrently with everything else, and
its result collected by the supervisor's next step, which the finished probe wakes. So one
hung probe (its timeout may be an hour) holds up nothing else, and an idle workload costs
one probe per period and nothing in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from runtimes.local.engine import Engine
from runtimes.local.probes import Outcome, ProbeTracker, http_get, probe_port, run_exec, tcp_connect
from runtimes.local.replica import Member, Replica


@dataclass(frozen=True)
class ProbeRun:
    replica: Replica
    member: Member
    tracker: ProbeTracker
    outcome: Outcome
    started: float  # monotonic; the next run is due a period after this


@dataclass(frozen=True)
class _InFlight:
    replica: Replica
    member: Member
    tracker: ProbeTracker
    started: float
    task: asyncio.Task[Outcome]


def _runnable(replica: Replica, tracker: ProbeTracker) -> bool:
    """Whether the tracker's container is in a state to be probed (due or not)."""
    if replica.restart_at is not None:
        return False
    member = replica.member(tracker.container)
    # Containers seen running, or just started by the supervisor (a probe that passes is
    # proof enough, and comes sooner than the engine's event); liveness and readiness wait
    # for startup.
    if not member.up:
        return False
    return tracker.kind == "startup" or replica.started_up(tracker.container)


class Prober:
    """HTTP and TCP probes go to the host ports published for the replica; exec probes
    through the engine's exec API. `on_result` is called when a probe finishes."""

    def __init__(self, engine: Engine, host: str, on_result: Callable[[], None]) -> None:
        self._engine, self._host, self._on_result = engine, host, on_result
        self._in_flight: dict[int, _InFlight] = {}  # by id() of the tracker

    async def close(self) -> None:
        tasks = [run.task for run in self._in_flight.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()

    def start_due(self, replicas: Iterable[Replica], now: float) -> None:
        """Start every probe that is due and not running yet."""
        for replica in replicas:
            for tracker in replica.trackers:
                if id(tracker) in self._in_flight or not tracker.due(now):
                    continue
                if _runnable(replica, tracker):
                    member = replica.member(tracker.container)
                    task = asyncio.create_task(self._probe(replica, member, tracker))
                    task.add_done_callback(lambda _: self._on_result())
                    self._in_flight[id(tracker)] = _InFlight(replica, member, tracker, now, task)

    def next_due(self, replicas: Iterable[Replica]) -> float:
        """When the next probe that could start falls due (monotonic; inf if none)."""
        return min(
            (
                tracker.next_due
                for replica in replicas
                for tracker in replica.trackers
                if id(tracker) not in self._in_flight
                and not (tracker.kind == "startup" and tracker.passing)
                and _runnable(replica, tracker)
            ),
            default=float("inf"),
        )

    def collect(self) -> list[ProbeRun]:
        """Results that are in, of trackers that are still current."""
        runs = []
        for key, run in list(self._in_flight.items()):
            if not run.task.done():
                continue
            del self._in_flight[key]
            # A container restarted meanwhile has new trackers: this answer is about the old one.
            current = any(t is run.tracker for t in run.replica.trackers)
            if current and run.member.up:
                outcome = run.task.result()
                runs.append(ProbeRun(run.replica, run.member, run.tracker, outcome, run.started))
        return runs

    async def _probe(self, replica: Replica, member: Member, tracker: ProbeTracker) -> Outcome:
        probe = tracker.probe
        if probe.exec_ is not None:
            assert member.id is not None
            return await run_exec(self._engine, member.id, probe)
        port = probe_port(probe, member.plan, replica.group)
        if port is None or (host_port := replica.ports.get(port)) is None:
            return Outcome(False, f"port {port} is not published")
        if probe.path is not None:
            return await http_get(probe, self._host, host_port, port)
        return await tcp_connect(self._host, host_port, port, probe.timeout_seconds)
