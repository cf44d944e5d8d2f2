"""The local runtime: workloads as containers on one Docker-API engine (Docker or Podman)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import datetime

from models.plan import RunPlan
from runtimes.base import LogLine, ReplicaStatus, RestartPolicy
from runtimes.local.containers import LABEL_ROLE
from runtimes.local.cpu import CpuSampler
from runtimes.local.engine import Engine
from runtimes.local.events import EngineEvents
from runtimes.local.logs import workload_logs
from runtimes.local.naming import network_name
from runtimes.local.supervisor import LocalSupervisor


class LocalRuntime:
    """`Runtime` on a Docker Engine API at `docker_url` (e.g. `unix:///run/podman.sock`).

    Args:
        docker_url: Where the engine's API answers.
        restart_policy: Backoff of restarts and the crash-loop limit.
        probe_host: Host where published ports answer; probes and replica addresses use it.
        stop_grace_seconds: Time between SIGTERM and SIGKILL when stopping a container.
        publish_ports: The host port range (low, high) published ports are given.
    """

    name = "local"

    def __init__(
        self,
        docker_url: str,
        *,
        restart_policy: RestartPolicy = RestartPolicy(),
        probe_host: str = "127.0.0.1",
        stop_grace_seconds: int = 10,
        publish_ports: tuple[int, int] = (20000, 32767),
    ) -> None:
        self._engine = Engine(docker_url, publish_ports)
        self._events = EngineEvents(self._engine)  # one subscription for every supervisor
        self._policy = restart_policy
        self._probe_host = probe_host
        self._grace = stop_grace_seconds
        self._cpu = CpuSampler(self._engine)

    async def ping(self) -> None:
        await self._engine.ping()

    def supervisor(
        self,
        plan: RunPlan,
        secrets: Mapping[str, str],
        previous: list[ReplicaStatus],
    ) -> LocalSupervisor:
        return LocalSupervisor(
            self._engine,
            self._events,
            plan,
            secrets,
            previous,
            policy=self._policy,
            probe_host=self._probe_host,
            stop_grace_seconds=self._grace,
        )

    async def halt(self, workload_id: str) -> None:
        """Stop every container of the workload; keep them so their logs stay readable."""
        rows = await self._engine.list_containers(workload_id)
        running = [row for row in rows if row.state in ("running", "paused", "created")]
        await asyncio.gather(*(self._engine.stop(row.id, self._grace) for row in running))

    async def remove(self, workload_id: str, *, keep_generation: int | None = None) -> int:
        """Remove the workload's containers (all, or all but `keep_generation`)."""
        rows = await self._engine.list_containers(workload_id)
        doomed = [
            row
            for row in rows
            if keep_generation is None or row.key is None or row.key.generation != keep_generation
        ]
        # Sidecars first: Podman will not remove a container whose network others share.
        sidecars = [row for row in doomed if row.labels.get(LABEL_ROLE) != "primary"]
        primaries = [row for row in doomed if row.labels.get(LABEL_ROLE) == "primary"]
        for batch in (sidecars, primaries):
            await asyncio.gather(*(self._engine.remove(row.id) for row in batch))
        if keep_generation is None:  # the workload is gone: so is its network
            await self._engine.remove_network(network_name(workload_id))
        return len(doomed)

    def logs(
        self,
        workload_id: str,
        *,
        replica: str | None = None,
        container: str | None = None,
        tail: int | None = None,
        since: datetime | None = None,
        follow: bool = False,
    ) -> AsyncIterator[LogLine]:
        return workload_logs(
            self._engine,
            workload_id,
            replica=replica,
            container=container,
            tail=tail,
            since=since,
            follow=follow,
        )

    async def cpu_utilization(self, workload_id: str) -> dict[str, float]:
        return await self._cpu.utilization(workload_id)

    async def close(self) -> None:
        await self._events.close()
        await self._engine.close()
