"""The gateway's routes: `/api/v2/endpoints/{workloads|deployments}/{id}/{path}`.

The prefix and the id are matched after percent-decoding each segment exactly once, so
`/api/v2/endpoints/deployments/ab%63/x` reaches deployment `abc`, `%2563` stays `%63`, and an
encoded `/` (`%2F`) stays inside its segment. What follows the id goes to the replica exactly
as the caller sent it, query included.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote_to_bytes

from api.gateway.access import Kind

_HEAD: Final = (b"", b"api", b"v2", b"endpoints")
KINDS: Final[dict[bytes, Kind]] = {b"workloads": "workload", b"deployments": "deployment"}
MAX_ID_BYTES: Final = 200  # ids are 24 characters; anything much longer cannot exist
# The usual case, nothing encoded before the id's end: one match, no decoding.
_PLAIN: Final = re.compile(rb"/api/v2/endpoints/(workloads|deployments)/([^/?%]{1,200})(?=[/?]|$)")


_ROUTES: dict[bytes, tuple[Kind, str, bytes] | None] = {}
_ROUTES_MAX: Final = 1024  # targets remembered, of at most _ROUTES_BYTES each
_ROUTES_BYTES: Final = 256


def invoke_route(target: bytes) -> tuple[Kind, str, bytes] | None:
    """(kind, id, what goes upstream) for an invoke path, or None for any other path.
    Remembered for short targets: callers mostly send the same few over and over."""
    if target in _ROUTES:
        return _ROUTES[target]
    route = _route(target)
    if len(target) <= _ROUTES_BYTES:
        if len(_ROUTES) >= _ROUTES_MAX:
            _ROUTES.clear()
        _ROUTES[target] = route
    return route


def _route(target: bytes) -> tuple[Kind, str, bytes] | None:
    plain = _PLAIN.match(target)
    if plain is not None:
        rest = target[plain.end() :]
        upstream = rest if rest[:1] == b"/" else b"/" + rest
        return KINDS[plain[1]], plain[2].decode("utf-8", "replace"), upstream
    return _decoded_route(target)


def _decoded_route(target: bytes) -> tuple[Kind, str, bytes] | None:
    path, question, query = target.partition(b"?")
    segments = path.split(b"/", 6)  # '', api, v2, endpoints, kind, id[, rest]
    if len(segments) < 6:
        return None
    decoded = [_decoded(segment) for segment in segments[:6]]
    kind = KINDS.get(decoded[4])
    ident = decoded[5]
    if tuple(decoded[:4]) != _HEAD or kind is None or not ident or len(ident) > MAX_ID_BYTES:
        return None
    upstream = b"/" + segments[6] if len(segments) == 7 else b"/"
    if question:
        upstream += b"?" + query
    return kind, ident.decode("utf-8", "replace"), upstream


def _decoded(segment: bytes) -> bytes:
    return unquote_to_bytes(segment) if b"%" in segment else segment
