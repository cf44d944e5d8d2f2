"""Free loopback ports for test and bench servers.

Why not `bind(0)`: the kernel draws those from its ephemeral range, and rootful Podman publishes
container ports with NAT rules that hold no socket, so a port that looks free may be one a
container publishes: a server put there never sees a connection. Container ports come from the
runtime's publish range (20000-32767 by default), so test servers use a range of their own.
"""

from __future__ import annotations

import random
import socket

LOW, HIGH = 10000, 19999
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, never handed out before in this process."""
    for _ in range(1000):
        port = random.randint(LOW, HIGH)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {LOW}-{HIGH}")
