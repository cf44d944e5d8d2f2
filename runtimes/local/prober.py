"""Runs the probes that are due, for every replica of a supervisor, concurrently.

Each probe runs as a task of its own, as a kubelet runs them: a tick waits for its probes at
most `wait` seconds, and a slower one (its timeout may be an hour) is collected by a later
tick. So one hung probe does not hold up restarts and status of every other replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from runtimes.local.engine import Engine
from runtimes.local.probes import (
    Outcome,
    ProbeTracker,
    http_get,
    probe_port,
    run_exec,
    tcp_connect,
)
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


class Prober:
    """HTTP and TCP probes go to the host ports published for the replica; exec probes
    through the engine's exec API."""

    def __init__(self, engine: Engine, host: str) -> None:
        self._engine, self._host = engine, host
        self._http: httpx.AsyncClient | None = None
        self._in_flight: dict[int, _InFlight] = {}  # by id() of the tracker

    async def close(self) -> None:
        tasks = [run.task for run in self._in_flight.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def run_due(
        self, replicas: Iterable[Replica], now: float, *, wait: float = 1.0
    ) -> list[ProbeRun]:
        """Start the probes that are due and not running yet; wait up to `wait` seconds;
        return every result that is in, of trackers that are still current."""
        for replica in replicas:
            if replica.restart_at is not None:
                continue
            for tracker in replica.trackers:
                member = replica.member(tracker.container)
                # Only containers seen running; liveness and readiness wait for startup.
                if member.state != "running" or member.down or not tracker.due(now):
                    continue
                if id(tracker) in self._in_flight:
                    continue
                if tracker.kind == "startup" or replica.started_up(tracker.container):
                    task = asyncio.create_task(self._probe(replica, member, tracker))
                    self._in_flight[id(tracker)] = _InFlight(replica, member, tracker, now, task)
        if self._in_flight:
            await asyncio.wait([run.task for run in self._in_flight.values()], timeout=wait)
        runs = []
        for key, run in list(self._in_flight.items()):
            if not run.task.done():
                continue
            del self._in_flight[key]
            # A container restarted meanwhile has new trackers: this answer is about the old one.
            current = any(t is run.tracker for t in run.replica.trackers)
            if current and run.member.state == "running" and not run.member.down:
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
            if self._http is None:
                # Probes skip certificate checks and proxies, as a kubelet does.
                self._http = httpx.AsyncClient(verify=False, trust_env=False)
            return await http_get(self._http, probe, self._host, host_port, port)
        return await tcp_connect(self._host, host_port, port, probe.timeout_seconds)
