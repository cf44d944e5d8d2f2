"""Lookups with a short memory, so the gateway does not read the catalog on every request.

An entry lives `ttl` seconds (0.5 by default): a revocation or a role change takes effect
within a second on every gateway and API process, and something created a moment ago is found
at once (a miss is looked up, not assumed). Misses are remembered too, so a flood of bad
credentials cannot become a flood of queries. While the catalog does not answer, a key that
was known keeps its last answer.

`peek` is the gateway's hot path: a dict lookup, no coroutine. Only when it finds nothing
fresh does a request await `get`, which loads the key (once, however many requests wait).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class Missing:
    """What `peek` answers when it has no fresh entry: the caller must `await get(key)`."""


MISSING = Missing()


class TtlCache(Generic[K, V]):
    def __init__(
        self,
        load: Callable[[K], Awaitable[V]],
        *,
        ttl: float = 0.5,
        size: int = 10_000,
        ttl_of: Callable[[V], float] | None = None,
    ) -> None:
        self.load = load
        self.ttl = ttl
        # How long to keep an answer, by its value, counted from when it arrived (default:
        # `ttl` from when it was asked for).
        self.ttl_of = ttl_of
        self.size = size
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._generation = 0

    def peek(self, key: K) -> V | Missing:
        """The fresh answer for `key`, or `MISSING`."""
        cached = self._entries.get(key)
        if cached is not None and cached[0] >= time.monotonic():
            return cached[1]
        return MISSING

    async def get(self, key: K) -> V:
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is not None and cached[0] >= now:
            return cached[1]
        # Concurrent misses of one key share one lookup: when a busy key expires, every
        # request in flight would otherwise query the catalog at once.
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(
                self._load(key, now, self._generation)
            )
        return await asyncio.shield(loading)

    async def _load(self, key: K, now: float, generation: int) -> V:
        try:
            value = await self.load(key)
        except Exception:
            stale = self._entries.get(key)
            if stale is None:
                raise
            # The catalog is away: keep answering as it last did (nothing can be revoked
            # while it is down), and ask again after another `ttl`, not on every request.
            log.warning("lookup failed; serving the last known answer", exc_info=True)
            value = stale[1]
        finally:
            del self._loading[key]
        if generation != self._generation:
            return value  # a `forget` ran meanwhile: this answer may predate it, do not keep it
        expires = now + self.ttl if self.ttl_of is None else time.monotonic() + self.ttl_of(value)
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        """Drop every entry (a fresher source has replaced what they answered)."""
        self._generation += 1
        self._entries.clear()

    def forget(self, matches: Callable[[K, V], bool]) -> None:
        """Drop entries at once in this process (other processes follow within `ttl`)."""
        self._generation += 1
        for key, (_, value) in list(self._entries.items()):
            if matches(key, value):
                del self._entries[key]
