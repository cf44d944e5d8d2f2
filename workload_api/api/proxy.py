"""Forward one HTTP request to a replica and stream the answer back: the core of the gateway.

The caller's `Authorization` header is consumed here, never forwarded; hop-by-hop headers are
dropped; `X-Forwarded-*` and `X-Request-ID` are added. Bodies stream both ways.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import httpx
from fastapi import Request
from starlette.responses import Response, StreamingResponse

from workload_api.errors import UnavailableError, UpstreamTimeoutError

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
NOT_FORWARDED = HOP_BY_HOP | {"authorization", "host"}


class ReplicaProxy:
    """Round-robin forwarding over the ready addresses of a target, with one shared client."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self._turn = itertools.count()

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
        if not addresses:
            raise UnavailableError(
                f"{target} has no ready replica; try again shortly", retry_after_seconds=2
            )
        start = next(self._turn)
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        body = request.stream() if has_body else None
        last_error: Exception | None = None
        # A refused connection happens before any byte of the body is read, so the next
        # replica can be tried with the same body stream.
        for attempt in range(min(len(addresses), 3)):
            address = addresses[(start + attempt) % len(addresses)]
            upstream = self.client.build_request(
                request.method,
                httpx.URL(f"http://{address}/{path}", query=request.url.query.encode()),
                headers=self._headers(request),
                content=body,
            )
            try:
                answer = await self.client.send(upstream, stream=True)
            except httpx.ConnectError as error:
                last_error = error
                continue
            except httpx.TimeoutException:
                raise UpstreamTimeoutError(f"{target} did not answer in time") from None
            response = StreamingResponse(_relay(answer, on_done), status_code=answer.status_code)
            # Raw headers keep repeated ones (Set-Cookie) that a mapping would merge.
            response.raw_headers = [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in answer.headers.multi_items()
                if name.lower() not in HOP_BY_HOP
            ]
            return response
        log.warning(
            "no replica accepted the connection", extra={"target": target, "error": str(last_error)}
        )
        raise UnavailableError(
            f"{target} refused the connection; try again shortly", retry_after_seconds=1
        )

    def _headers(self, request: Request) -> list[tuple[str, str]]:
        headers = [
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in NOT_FORWARDED and not name.lower().startswith("x-forwarded-")
        ]
        client = request.client.host if request.client else ""
        forwarded_for = request.headers.get("x-forwarded-for")
        headers += [
            ("X-Forwarded-For", f"{forwarded_for}, {client}" if forwarded_for else client),
            ("X-Forwarded-Proto", request.url.scheme),
            ("X-Forwarded-Host", request.headers.get("host", "")),
            ("X-Request-ID", getattr(request.state, "request_id", "")),
        ]
        return headers


async def _relay(
    answer: httpx.Response, on_done: Callable[[int], Awaitable[None] | None] | None
) -> AsyncIterator[bytes]:
    # `finally` also runs when the client goes away mid-stream: the upstream connection is
    # released and the request is still counted.
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await answer.aclose()
        if on_done is not None:
            result = on_done(answer.status_code)
            if result is not None:
                await result
