"""Which side of a rollout a call goes to: the candidate takes `weight` percent of calls.

A caller that sends a session key (the `X-Wapi-Session` header, or the `wapi_session`
cookie) always lands on the same side while the weight stays, in every gateway process: the
side is a hash of the rollout and the key, compared with the weight, so it depends only on
what the catalog says. As the weight grows, a session on the candidate stays there. Calls
without a key are spread by a counter per deployment (smooth: of any run of calls, the
candidate gets its weight's share, to within one call). A WebSocket session is a call: it
stays where its handshake went.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

SESSION_HEADER = b"x-wapi-session"
SESSION_COOKIE = b"wapi_session"
_BUCKETS = 10_000
HeaderLines = Sequence[tuple[bytes, bytes, bytes]]  # (name as sent, value, lowercased name)


def session_key(headers: HeaderLines) -> bytes | None:
    """The caller's session key, if it sent one (the header wins over the cookie)."""
    cookie: bytes | None = None
    for _, value, lname in headers:
        if lname == SESSION_HEADER and value:
            return value
        if lname == b"cookie" and cookie is None:
            cookie = _cookie(value, SESSION_COOKIE)
    return cookie


def sticky_side(rollout_id: str, weight: int, key: bytes) -> bool:
    """True: the candidate. The same for the same rollout, weight and key everywhere."""
    digest = hashlib.blake2b(rollout_id.encode() + b"\0" + key, digest_size=8).digest()
    return int.from_bytes(digest, "big") % _BUCKETS < weight * (_BUCKETS // 100)


class Spreader:
    """Spreads calls without a session key: call `n` goes to the candidate when
    floor(n * weight / 100) grows, so the candidate gets exactly its share over time."""

    def __init__(self) -> None:
        self._turns: dict[str, int] = {}

    def candidate(self, deployment_id: str, weight: int) -> bool:
        turn = self._turns.get(deployment_id, 0)
        self._turns[deployment_id] = turn + 1
        return (turn + 1) * weight // 100 > turn * weight // 100


def _cookie(header: bytes, name: bytes) -> bytes | None:
    for part in header.split(b";"):
        key, sep, value = part.strip().partition(b"=")
        if sep and key == name and value:
            return value
    return None
