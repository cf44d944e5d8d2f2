"""API key lookups with a short memory, so every request does not read the catalog.

Entries live `ttl` seconds (0.5 by default): a revoked key stops working within a second on
every API process, which is also how long a new key may take to be recognised.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workload_api.errors import AuthenticationError
from workload_api.services import api_keys
from workload_api.services.api_keys import Principal


class KeyCache:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, ttl: float = 0.5, size: int = 10_000
    ) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self.size = size
        # Unknown keys are remembered too, so a flood of bad keys cannot flood the database.
        self._entries: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()

    async def authenticate(self, key: str) -> Principal:
        digest = api_keys.hash_key(key)
        now = time.monotonic()
        cached = self._entries.get(digest)
        if cached is None or cached[0] < now:
            async with self.sessions() as session:
                try:
                    principal: Principal | None = await api_keys.authenticate(session, key)
                except AuthenticationError:
                    principal = None
            self._entries[digest] = (now + self.ttl, principal)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            cached = self._entries[digest]
        if cached[1] is None:
            raise AuthenticationError("the API key is not valid")
        return cached[1]

    def forget(self, key_id: str) -> None:
        """Drop a revoked key at once in this process (others follow within `ttl`)."""
        for digest, (_, principal) in list(self._entries.items()):
            if principal is not None and principal.key_id == key_id:
                del self._entries[digest]
