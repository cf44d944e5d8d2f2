"""Lookups with a short memory, so the gateway does not read the catalog on every request.

An entry lives `ttl` seconds (0.5 by default): a revocation or a role change takes effect
within a second on every API process, and something created a moment ago is found at once
(a miss is looked up, not assumed). Misses are remembered too, so a flood of bad credentials
cannot become a flood of queries.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(
        self, load: Callable[[K], Awaitable[V]], *, ttl: float = 0.5, size: int = 10_000
    ) -> None:
        self.load = load
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    async def get(self, key: K) -> V:
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is not None and cached[0] >= now:
            return cached[1]
        value = await self.load(key)
        self._entries[key] = (now + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value

    def forget(self, matches: Callable[[K, V], bool]) -> None:
        """Drop entries at once in this process (other processes follow within `ttl`)."""
        for key, (_, value) in list(self._entries.items()):
            if matches(key, value):
                del self._entries[key]
