"""Where the gateway sends traffic, held in memory.

A background task reloads one snapshot from the catalog twice a second: ready replica addresses
per workload and each deployment's current workload. Requests that find their answer there never
wait on the database, and a swap reaches every gateway process within a second. A miss (a
deployment or a ready replica newer than the snapshot) reads that one key from the catalog, so
what a client has just been told exists or is running takes traffic at once; that read is one
primary-key lookup, cheap enough even for a storm of calls to a stopped workload. (Who may call
is `key_cache.py`'s job.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog.tables import Deployment, Workload, WorkloadReplica

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Routes:
    ready: dict[str, list[str]] = field(default_factory=dict)  # workload -> addresses
    workloads: frozenset[str] = frozenset()
    deployments: dict[str, str] = field(default_factory=dict)  # deployment -> workload


class ReplicaDirectory:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, interval: float = 0.5
    ) -> None:
        self.sessions = sessions
        self.interval = interval
        self.routes = Routes()
        self._task: asyncio.Task[None] | None = None

    async def addresses(self, workload_id: str) -> list[str]:
        """Ready addresses, from the snapshot or, when it has none, from the catalog."""
        found = self.routes.ready.get(workload_id)
        if found:
            return found
        async with self.sessions() as session:
            rows = await session.execute(
                _ready_replicas().where(WorkloadReplica.workload_id == workload_id)
            )
            return [address for _, address in rows if address]

    def knows(self, workload_id: str) -> bool:
        return workload_id in self.routes.workloads

    async def deployment_target(self, deployment_id: str) -> str | None:
        """The workload a deployment routes to, from the snapshot or, for a deployment newer
        than it, from the catalog. (A time-throttled reload here once answered 404 to the
        first call on a just-created deployment: the snapshot had been read before it.)"""
        target = self.routes.deployments.get(deployment_id)
        if target is None:
            async with self.sessions() as session:
                target = await session.scalar(
                    select(Deployment.workload_id).where(Deployment.id == deployment_id)
                )
        return target

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="replica-directory")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> None:
        async with self.sessions() as session:
            rows = await session.execute(_ready_replicas())
            ready: dict[str, list[str]] = defaultdict(list)
            for workload_id, address in rows:
                if address:
                    ready[workload_id].append(address)
            workloads = frozenset(await session.scalars(select(Workload.id)))
            deployments = {
                deployment_id: workload_id
                for deployment_id, workload_id in await session.execute(
                    select(Deployment.id, Deployment.workload_id)
                )
            }
        self.routes = Routes(dict(ready), workloads, deployments)

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as error:  # keep serving the last table while the catalog is away
                log.warning("could not refresh the route table", extra={"error": str(error)})
            await asyncio.sleep(self.interval)


def _ready_replicas() -> Select[str, str | None]:
    return (
        select(WorkloadReplica.workload_id, WorkloadReplica.address)
        .where(WorkloadReplica.ready.is_(True), WorkloadReplica.address.is_not(None))
        # The entry group's replicas take traffic; ordered so they come first.
        .order_by(WorkloadReplica.group_name, WorkloadReplica.replica_index)
    )
