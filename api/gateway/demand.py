"""This gateway process's calls in flight per workload, published for the autoscaler.

The hot path adds and subtracts one per call (`add`, `remove`: a dict update). A task samples
the counts ten times a second and writes their average to this process's row in the catalog
(`services/demand.py`) when it changed, at most once a second, and every `HEARTBEAT` seconds
when it did not; a call that starts waiting for a workload at zero (`hold`) makes it write at
once, so the autoscaler starts a replica without waiting for the next report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import demand
from services.demand import HEARTBEAT, DemandReport

log = logging.getLogger(__name__)

SAMPLE_EVERY = 0.1
PUBLISH_EVERY = 1.0  # the shortest gap between two writes of a changed report


class Demand:
    def __init__(self, sessions: async_sessionmaker[AsyncSession] | None) -> None:
        self.sessions = sessions  # None: nothing is published (a gateway in a unit test)
        self.name = f"{socket.gethostname()[:50]}-{os.getpid()}-{os.urandom(4).hex()}"
        self.in_flight: dict[str, int] = {}
        self.held: dict[str, int] = {}
        self._sums: dict[str, float] = {}
        self._samples = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._written: tuple[dict[str, float], dict[str, int]] | None = None
        self._failing = False

    # ---- the hot path ---------------------------------------------------------------------

    def add(self, workload: str) -> None:
        self.in_flight[workload] = self.in_flight.get(workload, 0) + 1

    def remove(self, workload: str) -> None:
        left = self.in_flight.get(workload, 1) - 1
        if left > 0:
            self.in_flight[workload] = left
        else:
            self.in_flight.pop(workload, None)

    def hold(self, workload: str) -> None:
        """A call waits for a replica of `workload` to start: it counts as in flight."""
        self.add(workload)
        held = self.held.get(workload, 0)
        self.held[workload] = held + 1
        if not held:
            self._wake.set()

    def release(self, workload: str) -> None:
        self.remove(workload)
        left = self.held.get(workload, 1) - 1
        if left > 0:
            self.held[workload] = left
        else:
            self.held.pop(workload, None)

    # ---- publishing ------------------------------------------------------------------------

    def start(self) -> None:
        if self.sessions is not None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="demand")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.sessions is not None:
            with contextlib.suppress(Exception):  # the catalog away: the row goes stale
                async with self.sessions() as session, session.begin():
                    await demand.forget(session, self.name)

    async def _run(self) -> None:
        published = -HEARTBEAT
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SAMPLE_EVERY)
            self._sample()
            now = time.monotonic()
            due = now - published >= HEARTBEAT
            if self._wake.is_set() or due or (now - published >= PUBLISH_EVERY and self.changed()):
                self._wake.clear()
                published = now
                await self.publish()

    def _sample(self) -> None:
        self._samples += 1
        for workload, count in self.in_flight.items():
            self._sums[workload] = self._sums.get(workload, 0.0) + count

    def report(self) -> tuple[dict[str, float], dict[str, int]]:
        """The average since the last write (to two decimals); held calls count in full."""
        samples = max(self._samples, 1)
        averages = {w: round(total / samples, 2) for w, total in self._sums.items()}
        for workload, count in self.held.items():
            averages[workload] = max(averages.get(workload, 0.0), float(count))
        return averages, dict(self.held)

    def changed(self) -> bool:
        return self.report() != self._written

    async def publish(self) -> None:
        """Write the report and start a new average."""
        assert self.sessions is not None
        averages, held = self.report()
        self._sums, self._samples = {}, 0
        try:
            async with self.sessions() as session, session.begin():
                await demand.write(session, self.name, DemandReport(time.time(), averages, held))
        except Exception as error:  # the catalog away: the next write tries again
            if not self._failing:
                log.warning("could not publish demand", extra={"error": str(error)})
            self._failing = True
            return
        self._written, self._failing = (averages, held), False
