"""This gateway process's calls in flight per workload, published for the autoscaler.

The hot path adds and subtracts one per call (`add`, `remove`: a dict update). A task samples
the counts ten times a second and writes their average twice a second (`services/demand.py`);
a call that starts waiting for a workload at zero (`hold`) makes it write at once, so the
autoscaler starts a replica without waiting for the next report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

from services import demand
from services.demand import DemandReport

SAMPLE_EVERY = 0.1
PUBLISH_EVERY = 0.5


class Demand:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.name = f"{os.getpid()}-{os.urandom(4).hex()}"
        self.in_flight: dict[str, int] = {}
        self.held: dict[str, int] = {}
        self._sums: dict[str, float] = {}
        self._samples = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

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
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._task = asyncio.get_running_loop().create_task(self._run(), name="demand")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.directory is not None:
            demand.forget(self.directory, self.name)

    async def _run(self) -> None:
        published = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SAMPLE_EVERY)
            self._sample()
            now = time.monotonic()
            if self._wake.is_set() or now - published >= PUBLISH_EVERY:
                self._wake.clear()
                published = now
                self.publish()

    def _sample(self) -> None:
        self._samples += 1
        for workload, count in self.in_flight.items():
            self._sums[workload] = self._sums.get(workload, 0.0) + count

    def publish(self) -> None:
        """Write the average since the last write; held calls count in full at once."""
        assert self.directory is not None
        samples = max(self._samples, 1)
        averages = {w: total / samples for w, total in self._sums.items()}
        for workload, count in self.held.items():
            averages[workload] = max(averages.get(workload, 0.0), float(count))
        self._sums, self._samples = {}, 0
        demand.write(self.directory, self.name, DemandReport(time.time(), averages, self.held))
