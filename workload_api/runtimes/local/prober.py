"""Runs the probes that are due, for every replica of a supervisor, concurrently."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from workload_api.runtimes.local.engine import Engine
from workload_api.runtimes.local.probes import (
    Outcome,
    ProbeTracker,
    http_get,
    probe_port,
    run_exec,
    tcp_connect,
)
from workload_api.runtimes.local.replica import Member, Replica


@dataclass(frozen=True)
class ProbeRun:
    replica: Replica
    member: Member
    tracker: ProbeTracker
    outcome: Outcome


class Prober:
    """HTTP and TCP probes go to the host ports published for the replica; exec probes
    through the engine's exec API."""

    def __init__(self, engine: Engine, host: str) -> None:
        self._engine, self._host = engine, host
        self._http: httpx.AsyncClient | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def run_due(self, replicas: Iterable[Replica], now: float) -> list[ProbeRun]:
        due: list[tuple[Replica, Member, ProbeTracker]] = []
        for replica in replicas:
            if replica.restart_at is not None:
                continue
            for tracker in replica.trackers:
                member = replica.member(tracker.container)
                # Only containers seen running; liveness and readiness wait for startup.
                if member.state != "running" or member.down or not tracker.due(now):
                    continue
                if tracker.kind == "startup" or replica.started_up(tracker.container):
                    due.append((replica, member, tracker))
        outcomes = await asyncio.gather(*(self._probe(r, m, t) for r, m, t in due))
        return [
            ProbeRun(replica, member, tracker, outcome)
            for (replica, member, tracker), outcome in zip(due, outcomes, strict=True)
        ]

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
