"""`StatusWatch`: one per API process. A `GET` of a workload may wait until its status is one
it names (`waitForStatus`), so a client learns of `running` when it is written instead of at
its next poll.

Why it reads the catalog: the worker's process writes statuses, and a SQLite catalog tells no
other process about a change. One query per look reads the status of every workload someone
waits on (none while nobody waits), however many requests wait. On SQLite the look uses a
plain `sqlite3` connection in the event loop: about 10 us of CPU a look, where aiosqlite and
the ORM cost over a millisecond (measured on the build machine), which at a look every few
milliseconds took a large share of a core from the containers starting beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from catalog.tables import Workload
from models.status import WorkloadStatus

log = logging.getLogger(__name__)

# Beyond this many waiting requests a process answers at once, as a plain GET; the client
# then polls as it would without the wait.
CAPACITY = 1000
_CHUNK = 500  # ids per query: well under any database's limit on bound parameters
LOOK_SHARE_INVERSE = 4  # a pause of at least 4 times what the last look took


class StatusReader(Protocol):
    interval: float  # seconds between looks

    async def read(self, ids: Sequence[str]) -> dict[str, str]:
        """The status of each of `ids` that exists."""
        ...

    def close(self) -> None: ...


class CatalogStatuses:
    """Any catalog, through the API's read sessions."""

    interval = 0.02

    def __init__(self, reads: async_sessionmaker[AsyncSession]) -> None:
        self._reads = reads

    async def read(self, ids: Sequence[str]) -> dict[str, str]:
        statuses: dict[str, str] = {}
        async with self._reads() as session:
            for start in range(0, len(ids), _CHUNK):
                query = select(Workload.id, Workload.status).where(
                    Workload.id.in_(ids[start : start + _CHUNK])
                )
                statuses.update((row.id, row.status) for row in await session.execute(query))
        return statuses

    def close(self) -> None:
        pass


class SqliteStatuses:
    """A SQLite catalog file, read in the event loop (see the module docstring). In WAL mode
    a reader never waits for a writer."""

    interval = 0.002

    def __init__(self, path: str) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None)

    async def read(self, ids: Sequence[str]) -> dict[str, str]:
        statuses: dict[str, str] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            query = (
                f"SELECT id, status FROM {Workload.__tablename__} "  # the ids are bound
                f"WHERE id IN ({','.join('?' * len(chunk))})"
            )
            statuses.update(self._connection.execute(query, chunk).fetchall())
        return statuses

    def close(self) -> None:
        self._connection.close()


def status_reader(engine: AsyncEngine, reads: async_sessionmaker[AsyncSession]) -> StatusReader:
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return SqliteStatuses(database)
    return CatalogStatuses(reads)


class StatusWatch:
    def __init__(self, reader: StatusReader, *, capacity: int = CAPACITY) -> None:
        self._reader = reader
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

    def release_all(self) -> None:
        """Answer every waiting request now, and every later one at once (the API stops)."""
        self._capacity = 0
        for entries in self._waiting.values():
            for _, found in entries:
                if not found.done():
                    found.set_result(None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._reader.close()

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
            began = time.perf_counter()
            try:
                await self._look()
                failing = False
            except (SQLAlchemyError, sqlite3.Error, OSError) as error:
                # The waits then run to their end and answer what a plain GET would.
                if not failing:
                    log.warning("cannot read workload statuses: %s", error)
                failing = True
            # Looks take at most a fifth of the time, however many workloads are waited on.
            took = time.perf_counter() - began
            await asyncio.sleep(max(self._reader.interval, LOOK_SHARE_INVERSE * took))

    async def _look(self) -> None:
        ids = list(self._waiting)
        statuses = await self._reader.read(ids)
        for workload_id in ids:
            status = statuses.get(workload_id)  # None: deleted
            for wanted, found in self._waiting.get(workload_id, ()):
                if (status is None or status in wanted) and not found.done():
                    found.set_result(None)
