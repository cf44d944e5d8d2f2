"""Where the gateway sends traffic: ready replica addresses per workload, held in memory.

A background task reloads the table from the catalog twice a second, so requests never wait on
the database and a replica that becomes ready (or stops being ready) is seen within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workload_api.catalog.tables import Workload, WorkloadReplica

log = logging.getLogger(__name__)

# Misses reload the table at most this often, so a stopped workload cannot load the database.
MISS_REFRESH = 0.2


class ReplicaDirectory:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, interval: float = 0.5
    ) -> None:
        self.sessions = sessions
        self.interval = interval
        self._ready: dict[str, list[str]] = {}
        self._known: frozenset[str] = frozenset()
        self._loaded_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()

    async def addresses(self, workload_id: str) -> list[str]:
        """Ready addresses; on a miss, reload once if the table is older than `MISS_REFRESH`,
        so a replica that just became ready is used at once."""
        found = self._ready.get(workload_id)
        if not found and time.monotonic() - self._loaded_at > MISS_REFRESH:
            await self.refresh()
            found = self._ready.get(workload_id)
        return found or []

    def knows(self, workload_id: str) -> bool:
        return workload_id in self._known

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="replica-directory")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_loaded(self) -> None:
        await self._loaded.wait()

    async def refresh(self) -> None:
        async with self.sessions() as session:
            rows = await session.execute(
                select(WorkloadReplica.workload_id, WorkloadReplica.address)
                .where(WorkloadReplica.ready.is_(True), WorkloadReplica.address.is_not(None))
                .order_by(WorkloadReplica.group_name, WorkloadReplica.replica_index)
            )
            # The entry group's replicas take traffic; rows come ordered so it is listed first.
            table: dict[str, list[str]] = defaultdict(list)
            for workload_id, address in rows:
                if address:
                    table[workload_id].append(address)
            known = frozenset(await session.scalars(select(Workload.id)))
        self._ready, self._known = dict(table), known
        self._loaded_at = time.monotonic()
        self._loaded.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as error:  # keep serving the last table while the catalog is away
                log.warning("could not refresh the replica directory", extra={"error": str(error)})
            await asyncio.sleep(self.interval)
