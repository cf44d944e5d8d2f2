"""The long activities this worker runs (workload supervisions, deployment health monitors),
counted against its capacity, and a way to end one at once.

Temporal hands a worker at most `WAPI_SUPERVISION_CAPACITY` of them (the supervision queue's
`max_concurrent_activities`); these gauges show how many it holds. `release()` is how a
workflow stops a supervision without waiting for a heartbeat to carry a cancellation: the
`release_supervision` activity, on this worker's own task queue, calls it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Claim:
    """One long activity of one entity (a workload or a deployment) in this worker."""

    entity_id: str
    released: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class SupervisionSlots:
    """Which long activities run here, with Prometheus gauges of slots used and total."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.registry = CollectorRegistry()
        self._used = Gauge(
            "wapi_worker_supervision_slots_used",
            "Long activities (workload supervisions, deployment health monitors) this worker runs.",
            registry=self.registry,
        )
        total = Gauge(
            "wapi_worker_supervision_slots_total",
            "How many long activities this worker takes at most (WAPI_SUPERVISION_CAPACITY).",
            registry=self.registry,
        )
        total.set(capacity)
        self._claims: dict[str, set[Claim]] = {}

    @property
    def used(self) -> int:
        return sum(len(claims) for claims in self._claims.values())

    @contextmanager
    def hold(self, entity_id: str) -> Iterator[Claim]:
        claim = Claim(entity_id)
        self._claims.setdefault(entity_id, set()).add(claim)
        self._used.inc()
        if self.used == self.capacity:
            log.warning(
                "supervision capacity reached: further workloads wait for another worker",
                extra={"capacity": self.capacity, "setting": "WAPI_SUPERVISION_CAPACITY"},
            )
        try:
            yield claim
        finally:
            claims = self._claims.get(entity_id, set())
            claims.discard(claim)
            if not claims:
                self._claims.pop(entity_id, None)
            self._used.dec()
            claim.finished.set()

    async def release(self, entity_id: str) -> int:
        """Ask every long activity of `entity_id` here to end, and wait until they have (so
        nothing they started is still under way); returns how many there were."""
        claims = list(self._claims.get(entity_id, ()))
        for claim in claims:
            claim.released.set()
        await asyncio.gather(*(claim.finished.wait() for claim in claims))
        return len(claims)
