"""Keep-alive connections to replicas: one pool per address, with a limit and an acquire timeout.

`UpstreamConnection` is a raw asyncio Protocol with an httptools response parser; it passes
what it parses to the `Exchange` (exchange.py) that holds it. A connection serves one request at
a time (no pipelining upstream) and goes back to its pool when the response has been read to
its end and the request body was sent in full.

Pool rules:
  * `acquire_nowait` is the hot path: the most recently used idle connection (LIFO keeps the
    hot set small, so surplus connections age out), no coroutine, no future;
  * `acquire` (slow path) opens a new connection while the pool is under its limit, or waits
    up to `acquire_timeout` for one to be released, then raises `PoolTimeoutError` (-> 503);
  * idle connections are closed after `idle_timeout` (default 1.5 s: before gunicorn's 2 s,
    uvicorn's and Node's 5 s keep-alive, so the gateway never reuses a connection the replica
    is closing), and at once when the replica closes them (EOF on an idle connection).

Why one module of this length: a connection and the pool it returns to share one life cycle
(open, serve, idle, reuse or close), and their accounting has to agree.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from typing import TYPE_CHECKING, Any, cast

import httptools

from api.gateway.headers import ResponseHead, scanned_response_head

if TYPE_CHECKING:
    from api.gateway.connection import ClientConnection
    from api.gateway.exchange import Exchange
    from api.gateway.metrics import GatewayMetrics


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")


class PoolTimeoutError(Exception):
    """No connection to this replica could be had within the acquire timeout."""


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "awaiting_head",
        "closed",
        "exchange",
        "feeding",
        "head",
        "head_buf",
        "idle_since",
        "last_activity",
        "parser",
        "pool",
        "served",
        "stale_parser",
        "transport",
        "tunnel",
        "tunnel_eof",
    )

    def __init__(self, pool: HostPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = _response_parser(self)
        self.exchange: Exchange | None = None
        self.closed = False
        self.feeding = False  # inside parser.feed_data: writes to the client are batched
        self.served = 0  # responses read on this connection (>0: it is a reused one)
        self.last_activity = 0.0
        self.idle_since = 0.0
        self.head: ResponseHead | None = None  # the current response's head, scanned
        self.head_buf = b""
        self.awaiting_head = False  # set when a request is sent: the next bytes are a head
        self.tunnel_eof = False
        self.tunnel: ClientConnection | None = None  # once a WebSocket session is relayed
        self.stale_parser = False

    # ---- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.pool.metrics.connections["upstream"] += 1

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            self.last_activity = time.monotonic()  # for the WebSocket idle timeout
            if tunnel.transport is not None:
                tunnel.transport.write(data)
            return
        exchange = self.exchange
        if exchange is None:  # a replica talking out of turn: the connection is unusable
            self.abort()
            return
        self.last_activity = time.monotonic()
        if self.awaiting_head:  # keep the raw head until llhttp says it is complete
            self.head_buf += data  # (b"" + data is data itself: no copy in the usual case)
        self.feeding = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            exchange.on_upgraded(data[upgrade.args[0] :])
        except httptools.HttpParserError as error:
            if not self.stale_parser:
                exchange.on_upstream_failure(
                    "invalid", f"sent an answer that could not be read: {error}"
                )
        finally:
            self.feeding = False
            if self.stale_parser:  # after a HEAD response: llhttp would wait for a body
                self.parser = _response_parser(self)
                self.stale_parser = False
        exchange.flush_client()

    def eof_received(self) -> bool:
        if self.tunnel is not None:  # half-close of a WebSocket session: pass it on
            self.tunnel_eof = True
            self.tunnel.peer_eof()
            return True
        return False  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.pool.lost(self)
        if self.tunnel is not None:
            self.tunnel.peer_lost()
        elif self.exchange is not None:
            self.exchange.on_upstream_lost(self)

    def pause_writing(self) -> None:  # the replica reads slower than the caller sends
        if self.exchange is not None:
            self.exchange.client.pause("upstream")
        elif self.tunnel is not None:
            self.tunnel.pause("upstream")

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.resume("upstream")
        elif self.tunnel is not None:
            self.tunnel.resume("upstream")

    # ---- httptools callbacks ---------------------------------------------------------------

    # No on_header/on_status callbacks: a Python call per header was the largest single cost
    # of a small response (~0.6 us each). The head is read from the raw bytes instead, once
    # llhttp has accepted it (see headers.scan_response_head).

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        if exchange is None or self.stale_parser:
            return
        buffer = self.head_buf
        end = buffer.find(b"\r\n\r\n")
        if end >= 0 and buffer.find(b"\n\n", 0, end) < 0 and buffer.find(b"\n\r\n", 0, end) < 0:
            head, after = buffer[:end], end + 4
        else:
            # Lines ended by a bare LF, as CGI scripts behind busybox httpd write them: llhttp
            # accepts them; the head is passed on with CRLF.
            blank = _BLANK_LINE.search(buffer)
            if blank is None:
                raise httptools.HttpParserError("response head without an end")
            head, after = _LINE_END.sub(b"\r\n", buffer[: blank.start()]), blank.end()
        status = self.parser.get_status_code()
        self.head_buf = buffer[after:]  # what follows: body, or the head after a 1xx
        if status >= 200 or status == 101:
            self.awaiting_head = False
            self.head_buf = b""
        self.head = scanned_response_head(head)
        exchange.on_response_head(status, self.parser.should_keep_alive(), self)

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None and not self.stale_parser:
            self.exchange.on_response_body(body)

    def on_message_complete(self) -> None:
        if self.exchange is not None and not self.stale_parser:
            self.exchange.on_response_end()

    # ---- used by the Exchange ------------------------------------------------------------

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def abort(self) -> None:
        """Drop the connection now (its state is unknown: mid-body, timed out...)."""
        if self.transport is not None and not self.closed:
            self.transport.abort()


class HostPool:
    """Connections to one replica address."""

    __slots__ = (
        "address",
        "host",
        "host_header",
        "idle",
        "limit",
        "metrics",
        "port",
        "total",
        "waiters",
    )

    def __init__(self, address: str, limit: int, metrics: GatewayMetrics) -> None:
        self.address = address
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self.host_header = address.encode("latin-1")
        self.idle: list[UpstreamConnection] = []
        self.total = 0  # open or opening connections, idle ones included
        self.limit = limit
        self.waiters: deque[asyncio.Future[UpstreamConnection | None]] = deque()
        self.metrics = metrics

    def lost(self, connection: UpstreamConnection) -> None:
        self.total -= 1
        self.metrics.connections["upstream"] -= 1
        # An idle connection stays in `idle` until taken or swept: skipped when closed.
        self._wake_one(None)

    def _wake_one(self, connection: UpstreamConnection | None) -> bool:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False


class Pools:
    def __init__(
        self,
        metrics: GatewayMetrics,
        *,
        limit_per_replica: int = 256,
        acquire_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        idle_timeout: float = 1.5,
    ) -> None:
        self.metrics = metrics
        self.limit = limit_per_replica
        self.acquire_timeout = acquire_timeout
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.pools: dict[str, HostPool] = {}

    def pool(self, address: str) -> HostPool:
        pool = self.pools.get(address)
        if pool is None:
            pool = self.pools[address] = HostPool(address, self.limit, self.metrics)
        return pool

    def acquire_nowait(self, address: str) -> UpstreamConnection | None:
        idle = self.pool(address).idle
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    async def acquire(self, address: str) -> UpstreamConnection:
        """An idle connection, a new one, or one released within the acquire timeout.
        Raises `PoolTimeoutError`, `TimeoutError` (connect) or `OSError` (refused, unreachable)."""
        pool = self.pool(address)
        connection = self.acquire_nowait(address)
        if connection is not None:
            return connection
        loop = asyncio.get_running_loop()
        if pool.total >= pool.limit:
            waiter: asyncio.Future[UpstreamConnection | None] = loop.create_future()
            timer = loop.call_later(self.acquire_timeout, _expire, waiter)
            pool.waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                # Cancelled (the caller left) after a connection was handed over: give it back.
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    given = waiter.result()
                    if given is not None:
                        self.release(given, reusable=True)
                raise
            finally:
                timer.cancel()
            if handed is not None:
                return handed
            if pool.total >= pool.limit:  # woken for a freed slot that someone else took
                return await self.acquire(address)
        pool.total += 1
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: UpstreamConnection(pool), pool.host, pool.port),
                self.connect_timeout,
            )
        except BaseException:
            pool.total -= 1
            pool._wake_one(None)
            raise
        return protocol

    def release(self, connection: UpstreamConnection, *, reusable: bool) -> None:
        """Back to the pool (or to a waiting request) if `reusable`, else closed."""
        connection.exchange = None
        if connection.closed:
            return
        if not reusable:
            connection.abort()  # connection_lost does the accounting
            return
        connection.served += 1
        pool = connection.pool
        if pool._wake_one(connection):
            return
        connection.idle_since = time.monotonic()
        pool.idle.append(connection)

    def sweep(self, now: float) -> None:
        """Close connections idle for longer than `idle_timeout` (called once a second)."""
        cutoff = now - self.idle_timeout
        for pool in self.pools.values():
            if not pool.idle:
                continue
            keep = []
            for connection in pool.idle:
                if connection.closed:
                    continue
                if connection.idle_since < cutoff:
                    assert connection.transport is not None
                    connection.transport.close()  # a FIN, not a reset: nothing is in flight
                else:
                    keep.append(connection)
            pool.idle = keep


def _response_parser(connection: UpstreamConnection) -> Any:
    """llhttp, accepting header lines that end with a bare LF, as CGI scripts behind busybox
    httpd write them. Only the replica's side is lenient: callers' requests are parsed
    strictly (a lenient request parser invites request smuggling), and what the caller gets
    is framed by the gateway anew."""
    parser = httptools.HttpResponseParser(connection)
    parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
    return parser


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(PoolTimeoutError())
