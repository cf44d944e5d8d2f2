"""Where the gateway sends traffic, held in memory.

A background task reloads one snapshot from the catalog twice a second: ready replica addresses
per workload and each deployment's current workload. Requests never wait on the database, and
a swap reaches every gateway process within a second. (Who may call is `key_cache.py`'s job.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workload_api.catalog.tables import Deployment, Workload, WorkloadReplica

log = logging.getLogger(__name__)

# Misses reload the table at most this often, so a stopped workload cannot load the database.
MISS_REFRESH = 0.2


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
        self._loaded_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def addresses(self, workload_id: str) -> list[str]:
        """Ready addresses; on a miss, reload once if the table is older than `MISS_REFRESH`,
        so a replica that just became ready is used at once."""
        found = self.routes.ready.get(workload_id)
        if not found and time.monotonic() - self._loaded_at > MISS_REFRESH:
            await self.refresh()
            found = self.routes.ready.get(workload_id)
        return found or []

    def knows(self, workload_id: str) -> bool:
        return workload_id in self.routes.workloads

    async def deployment_target(self, deployment_id: str) -> str | None:
        """The workload a deployment routes to; reloads once on a miss (a new deployment)."""
        target = self.routes.deployments.get(deployment_id)
        if target is None and time.monotonic() - self._loaded_at > MISS_REFRESH:
            await self.refresh()
            target = self.routes.deployments.get(deployment_id)
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
            rows = await session.execute(
                select(WorkloadReplica.workload_id, WorkloadReplica.address)
                .where(WorkloadReplica.ready.is_(True), WorkloadReplica.address.is_not(None))
                # The entry group's replicas take traffic; ordered so they come first.
                .order_by(WorkloadReplica.group_name, WorkloadReplica.replica_index)
            )
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
        self._loaded_at = time.monotonic()

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as error:  # keep serving the last table while the catalog is away
                log.warning("could not refresh the route table", extra={"error": str(error)})
            await asyncio.sleep(self.interval)
