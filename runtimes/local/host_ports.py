"""Host ports for published container ports, chosen by us rather than by the engine.

Why: rootful Podman publishes a port with NAT rules and holds no socket on it, so the port it
picked still looks free to the next `bind(0)`. A second container could be given the same port
(its callers would then reach the first container), and any process that later listens on it
(a test server, a Temporal dev server's internal service) never sees a connection. So ports come
from a range of their own, outside the kernel's ephemeral range that `bind(0)` draws from, and
never one a managed container already publishes.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable

# A port we handed out stays reserved this long even before the engine lists it.
_CLAIM_SECONDS = 120.0
# How long the engine's list of published ports is trusted.
_REFRESH_SECONDS = 30.0


class HostPortsExhaustedError(RuntimeError):
    """Every port of the range is published or in use."""


class HostPorts:
    """Chooses free host ports in `[low, high]`; `published` lists what containers hold."""

    def __init__(
        self, low: int, high: int, published: Callable[[], Awaitable[Iterable[int]]]
    ) -> None:
        self.low, self.high = low, high
        self._published = published
        self._known: set[int] = set()
        self._known_at = float("-inf")
        self._claims: dict[int, float] = {}
        self._listing = asyncio.Lock()

    async def claim(self, count: int) -> list[int]:
        """`count` distinct ports that no container publishes and nothing listens on."""
        # One list for a burst of creates, not one each. Why it matters: Podman opens every
        # listed running container's network namespace and closes it only when its garbage
        # collector runs, so a hundred creates each listing 300 containers ran it out of open
        # files (`accept4: too many open files`) and it stopped answering.
        async with self._listing:
            if time.monotonic() - self._known_at > _REFRESH_SECONDS:
                self._known = set(await self._published())
                self._known_at = time.monotonic()
        now = time.monotonic()
        self._claims = {port: at for port, at in self._claims.items() if now - at < _CLAIM_SECONDS}
        taken = self._known | set(self._claims)
        chosen: list[int] = []
        # From a random start, so that several workers on one engine rarely collide; then
        # every port once, so a nearly full range is still found free where it is.
        size = self.high - self.low + 1
        start = random.randrange(size)
        for offset in range(size):
            if len(chosen) == count:
                break
            port = self.low + (start + offset) % size
            if port not in taken and bindable(port):
                chosen.append(port)
        if len(chosen) < count:
            raise HostPortsExhaustedError(
                f"no free host port left in {self.low}-{self.high} (WAPI_PUBLISH_PORT_RANGE)"
            )
        self._claims.update(dict.fromkeys(chosen, now))
        return chosen


def bindable(port: int) -> bool:
    """Nothing listens on the port (a Docker daemon's proxy would, for its containers)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
