"""HTTP with retries: a 503 or 429 is retried after its `Retry-After` (or an exponential backoff
with jitter), and so is a connection that could not be made; a read that broke off is retried
only for methods that change nothing.

Retrying a 503 is safe for every method: the API answers 503 only when it wrote nothing (a
catalog or Temporal that is not answering), so a repeated `POST` cannot create twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from client.errors import ConnectionFailedError, error_from_response, retry_after_seconds

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    max_retry_after_seconds: float = 30.0
    statuses: frozenset[int] = frozenset({429, 503})

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_seconds)
        ceiling = min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)
        return random.uniform(ceiling / 2, ceiling)

    def after_response(
        self, attempt: int, request: Request, response: httpx.Response
    ) -> float | None:
        """Seconds to wait before the next try, or None to keep this response."""
        if request.raw or response.status_code not in self.statuses or attempt >= self.attempts:
            return None
        return self.delay(attempt, retry_after_seconds(response))

    def after_error(self, attempt: int, method: str, error: httpx.TransportError) -> float | None:
        never_sent = isinstance(
            error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
        )
        if attempt >= self.attempts or not (never_sent or method in SAFE_METHODS):
            return None
        return self.delay(attempt)


NO_RETRIES = RetryPolicy(attempts=1)


@dataclass(frozen=True)
class Request:
    """One call, ready to send: path relative to the API's root URL."""

    method: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    ok_statuses: frozenset[int] = frozenset()  # answered as data, not raised
    raw: bool = False  # every status is data (invoke: the workload's own answer), never retried
    timeout: float | None = None  # None: the client's default

    def build(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        params: list[tuple[str, str | int | float | bool | None]] = list(self.params)
        return http.build_request(
            self.method,
            self.path,
            params=params or None,
            json=self.json,
            content=self.content,
            headers=self.headers or None,
            timeout=http.timeout if self.timeout is None else self.timeout,
        )

    def failed(self, response: httpx.Response) -> bool:
        if self.raw:
            return False
        return response.status_code >= 400 and response.status_code not in self.ok_statuses


class SyncTransport:
    def __init__(self, http: httpx.Client, retry: RetryPolicy) -> None:
        self.http = http
        self.retry = retry

    def send(self, request: Request, *, stream: bool = False) -> httpx.Response:
        """The response; raises the typed error for an error status (body read first)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.http.send(request.build(self.http), stream=stream)
            except httpx.TransportError as error:
                delay = self.retry.after_error(attempt, request.method, error)
                if delay is None:
                    raise ConnectionFailedError(str(self.http.base_url), error) from error
            else:
                delay = self.retry.after_response(attempt, request, response)
                if delay is None:
                    if request.failed(response):
                        response.read()
                        response.close()
                        raise error_from_response(response)
                    return response
                response.close()
            time.sleep(delay)

    @contextmanager
    def stream(self, request: Request) -> Iterator[httpx.Response]:
        response = self.send(request, stream=True)
        try:
            yield response
        finally:
            response.close()


class AsyncTransport:
    def __init__(self, http: httpx.AsyncClient, retry: RetryPolicy) -> None:
        self.http = http
        self.retry = retry

    async def send(self, request: Request, *, stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.http.send(request.build(self.http), stream=stream)
            except httpx.TransportError as error:
                delay = self.retry.after_error(attempt, request.method, error)
                if delay is None:
                    raise ConnectionFailedError(str(self.http.base_url), error) from error
            else:
                delay = self.retry.after_response(attempt, request, response)
                if delay is None:
                    if request.failed(response):
                        await response.aread()
                        await response.aclose()
                        raise error_from_response(response)
                    return response
                await response.aclose()
            await asyncio.sleep(delay)

    @asynccontextmanager
    async def stream(self, request: Request) -> AsyncIterator[httpx.Response]:
        response = await self.send(request, stream=True)
        try:
            yield response
        finally:
            await response.aclose()
