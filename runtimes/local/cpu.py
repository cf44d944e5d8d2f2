"""CPU use of a workload's replicas from the engine's stats, in percent of their CPU limit.

The engine reports a container's cumulative CPU time (`cpu_stats.cpu_usage.total_usage`, ns);
two readings some time apart give its use over that time. Each call reads every running
primary container of the workload once and compares with the previous reading kept here, so
the first call answers nothing and each later one the use since the call before (the
autoscaler calls once a tick). The limit is the container's `NanoCpus` (every container runs
with one, `services/limits.py`), read once per container.
"""

from __future__ import annotations

import asyncio
import time

from runtimes.base import LABEL_GROUP
from runtimes.local.containers import LABEL_ROLE
from runtimes.local.engine import Engine


class CpuSampler:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._last: dict[str, tuple[float, int]] = {}  # container id -> (monotonic, cpu ns)
        self._limits: dict[str, float] = {}  # container id -> cores

    async def utilization(self, workload_id: str) -> dict[str, float]:
        """Group name -> mean CPU use of its running replicas, in percent of their limit
        (groups with no earlier reading are left out)."""
        rows = await self._engine.list_containers(workload_id)
        primaries = [row for row in rows if row.running and row.labels.get(LABEL_ROLE) == "primary"]
        readings = await asyncio.gather(*(self._percent(row.id) for row in primaries))
        by_group: dict[str, list[float]] = {}
        for row, percent in zip(primaries, readings, strict=True):
            if percent is not None:
                by_group.setdefault(row.labels.get(LABEL_GROUP, "default"), []).append(percent)
        # Readings of containers that are gone (any workload's) are dropped now and then.
        if len(self._last) > 4 * max(len(primaries), 256):
            self._last.clear()
        return {group: sum(values) / len(values) for group, values in by_group.items()}

    async def _percent(self, container_id: str) -> float | None:
        used = await self._engine.cpu_time(container_id)
        if used is None:
            return None
        now = time.monotonic()
        previous = self._last.get(container_id)
        self._last[container_id] = (now, used)
        cores = self._limits.get(container_id)
        if cores is None:
            cores = self._limits[container_id] = await self._engine.cpu_limit(container_id)
        if previous is None or cores <= 0 or now <= previous[0]:
            return None
        seconds = (used - previous[1]) / 1e9
        return max(seconds, 0.0) / (now - previous[0]) / cores * 100
