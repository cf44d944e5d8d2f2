"""Forward one HTTP request to a replica and stream the answer back: the core of the gateway.

The caller's `Authorization` header is consumed here, never forwarded; hop-by-hop headers are
dropped; `X-Forwarded-*` and `X-Request-ID` are added. Bodies stream both ways, as they are:
the path and query go upstream exactly as the caller encoded them, and nothing is compressed
or decompressed on the way. The client is aiohttp: per call it costs a third of what httpx
did, and that was most of the gateway's CPU (see `bench/gateway.py`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import aiohttp
from fastapi import Request
from multidict import CIMultiDict
from starlette.requests import HTTPConnection
from starlette.responses import Response, StreamingResponse
from yarl import URL

from services.errors import BadGatewayError, UnavailableError, UpstreamTimeoutError

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Content-Length is kept: with it the body streams as is, without chunked encoding.
# `Expect: 100-continue` was settled with the caller by the server in front of us; passed on,
# it would make the client wait for a `100` that many replicas never send.
NOT_FORWARDED = HOP_BY_HOP | {"authorization", "host", "expect"}
# What aiohttp would add on its own; a proxy sends only what its caller sent.
NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")
# Safe to send again when the replica closed the connection before answering (as nginx does).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


def client_session(timeout_seconds: float) -> aiohttp.ClientSession:
    """The gateway's one upstream client: connect within 5 s, then no gap between bytes
    longer than `timeout_seconds`; no overall limit, so long streams are not cut."""
    return aiohttp.ClientSession(
        # Idle upstream connections are dropped before common servers drop them (gunicorn 2 s,
        # uvicorn and Node 5 s): reusing one the replica is closing would fail the request.
        connector=aiohttp.TCPConnector(limit=1000, keepalive_timeout=1.5),
        # One session serves every caller: a cookie one replica sets for one caller must never
        # be sent on with another caller's request.
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=timeout_seconds),
        auto_decompress=False,
        trust_env=False,
    )


class ReplicaProxy:
    """Round-robin forwarding over the ready addresses of a target, with one shared client."""

    def __init__(self, client: aiohttp.ClientSession) -> None:
        self.client = client
        self._turn = itertools.count()

    def pick(self, addresses: Sequence[str], *, target: str) -> str:
        """The next address in turn (for a WebSocket session, which is not retried)."""
        return addresses[self._turn_of(addresses, target) % len(addresses)]

    def _turn_of(self, addresses: Sequence[str], target: str) -> int:
        if not addresses:
            raise UnavailableError(
                f"{target} has no ready replica; try again shortly", retry_after_seconds=2
            )
        return next(self._turn)

    async def forward(
        self,
        request: Request,
        addresses: Sequence[str],
        path: str,
        *,
        target: str,
        on_done: Callable[[int], Awaitable[None] | None] | None = None,
    ) -> Response:
        """Forward to one of `addresses`; `on_done(status)` runs once the response body has
        been sent (for metrics and audit), not when its headers go out."""
        start = self._turn_of(addresses, target)
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        body = request.stream() if has_body else None
        upstream = upstream_path(request, path)
        headers = forwarded_headers(request)
        last_error: Exception | None = None
        # A refused connection happens before any byte of the body is read, so the next
        # replica can be tried with the same body stream.
        for attempt in range(min(len(addresses), 3)):
            address = addresses[(start + attempt) % len(addresses)]
            try:
                answer = await self.client.request(
                    request.method,
                    URL(f"http://{address}{upstream}", encoded=True),
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    skip_auto_headers=NO_AUTO_HEADERS,
                )
            except aiohttp.ClientConnectorError as error:
                last_error = error
                continue
            except aiohttp.ServerDisconnectedError as error:
                if body is not None or request.method not in IDEMPOTENT:
                    raise BadGatewayError(f"{target} closed the connection early") from None
                last_error = error
                continue
            except TimeoutError:
                raise UpstreamTimeoutError(f"{target} did not answer in time") from None
            except aiohttp.ClientError as error:
                raise BadGatewayError(
                    f"{target} sent an answer that could not be read: {type(error).__name__}"
                ) from None
            response = StreamingResponse(_relay(answer, on_done), status_code=answer.status)
            # Raw headers keep repeated ones (Set-Cookie) that a mapping would merge.
            response.raw_headers = [
                (name, value)
                for name, value in answer.raw_headers
                if name.decode("latin-1").lower() not in HOP_BY_HOP
            ]
            return response
        log.warning(
            "no replica accepted the connection", extra={"target": target, "error": str(last_error)}
        )
        raise UnavailableError(
            f"{target} refused or closed the connection; try again shortly",
            retry_after_seconds=1,
        )


def forwarded_headers(
    connection: HTTPConnection, *, drop: frozenset[str] = frozenset()
) -> CIMultiDict[str]:
    """The caller's headers less those not forwarded (and `drop`), plus `X-Forwarded-*` and
    `X-Request-ID`."""
    headers = CIMultiDict(
        (name, value)
        for name, value in connection.headers.items()
        if name not in NOT_FORWARDED and name not in drop and not name.startswith("x-forwarded-")
    )
    client = connection.client.host if connection.client else ""
    forwarded_for = connection.headers.get("x-forwarded-for")
    headers["X-Forwarded-For"] = f"{forwarded_for}, {client}" if forwarded_for else client
    headers["X-Forwarded-Proto"] = "https" if connection.url.scheme in ("https", "wss") else "http"
    headers["X-Forwarded-Host"] = connection.headers.get("host", "")
    headers["X-Request-ID"] = getattr(connection.state, "request_id", "")
    return headers


def upstream_path(connection: HTTPConnection, path: str) -> str:
    """`/{path}?{query}` as the caller encoded them: the route's prefix (`.../{id}/`) is the
    same in the raw and the decoded path, so its length is where the workload's path starts."""
    decoded: str = connection.scope["path"]
    raw: bytes = connection.scope.get("raw_path") or decoded.encode()
    start = len(decoded) - len(path) - 1
    query: bytes = connection.scope.get("query_string", b"")
    upstream = raw[start:].decode("latin-1")
    return f"{upstream}?{query.decode('latin-1')}" if query else upstream


async def _relay(
    answer: aiohttp.ClientResponse, on_done: Callable[[int], Awaitable[None] | None] | None
) -> AsyncIterator[bytes]:
    # `finally` also runs when the client goes away mid-stream: the upstream connection is
    # released (closed, if the body was not read to its end) and the request is still counted.
    try:
        async for chunk in answer.content.iter_any():
            yield chunk
    except (TimeoutError, aiohttp.ClientError):
        # Headers have gone out; all that is left is to end the stream early.
        log.warning("the upstream answer broke off", extra={"url": str(answer.url)})
        raise
    finally:
        answer.release()
        if on_done is not None:
            result = on_done(answer.status)
            if result is not None:
                await result
