"""`StatusWatch`: one per API process. A `GET` of a workload may wait until its status is one
it names (`waitForStatus`), so a client learns of `running` when it is written instead of at
its next poll.

Why it reads the catalog: the worker's process writes statuses, and a SQLite catalog tells no
other process about a change. One query every `interval` reads the status of every workload
someone waits on (none while nobody waits), however many requests wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog.tables import Workload
from models.status import WorkloadStatus

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 0.02
# Beyond this many waiting requests a process answers at once, as a plain GET; the client
# then polls as it would without the wait.
CAPACITY = 1000
_CHUNK = 500  # ids per query: well under any database's limit on bound parameters


class StatusWatch:
    def __init__(
        self,
        reads: async_sessionmaker[AsyncSession],
        *,
        interval: float = INTERVAL_SECONDS,
        capacity: int = CAPACITY,
    ) -> None:
        self._reads = reads
        self._interval = interval
        self._capacity = capacity
        self._waiting: dict[str, list[tuple[frozenset[str], asyncio.Future[None]]]] = defaultdict(
            list
        )
        self._count = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return self._count

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="status-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait(
        self, workload_id: str, statuses: Collection[WorkloadStatus], seconds: float
    ) -> None:
        """Until the workload's status is one of `statuses`, it is gone, or `seconds` pass;
        at once when this process already has `capacity` requests waiting."""
        if seconds <= 0 or self._count >= self._capacity:
            return
        found: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (frozenset[str](statuses), found)
        self._waiting[workload_id].append(entry)
        self._count += 1
        self._wake.set()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await found
        finally:
            self._count -= 1
            entries = self._waiting[workload_id]
            entries.remove(entry)
            if not entries:
                del self._waiting[workload_id]

    async def _run(self) -> None:
        failing = False
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
            try:
                await self._look()
                failing = False
            except (SQLAlchemyError, OSError) as error:
                # The waits then run to their end and answer what a plain GET would.
                if not failing:
                    log.warning("cannot read workload statuses: %s", error)
                failing = True
            await asyncio.sleep(self._interval)

    async def _look(self) -> None:
        ids = list(self._waiting)
        statuses: dict[str, str] = {}
        async with self._reads() as session:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                query = select(Workload.id, Workload.status).where(Workload.id.in_(chunk))
                statuses.update((row.id, row.status) for row in await session.execute(query))
        for workload_id in ids:
            status = statuses.get(workload_id)  # None: deleted
            for wanted, found in self._waiting.get(workload_id, ()):
                if (status is None or status in wanted) and not found.done():
                    found.set_result(None)
