"""One caller connection: HTTP/1.1 parsing (httptools), keep-alive, pipelining, and the
byte tunnel of a WebSocket session once the replica has accepted it.

Requests on a connection are answered in order, one `Exchange` at a time; a pipelined request
waits its turn with reading paused. Writes made while the parser runs are batched and flushed
once per read. (Just over 300 lines: the parser's callbacks and the connection's states are
one protocol.)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import TYPE_CHECKING, Final, cast

import httptools

from api.gateway import headers as h
from api.gateway.exchange import Exchange

if TYPE_CHECKING:
    from api.gateway.server import Gateway
    from api.gateway.upstream import UpstreamConnection


class ClientConnection(asyncio.Protocol):
    """One caller connection: parses requests, runs one `Exchange` at a time (pipelined
    requests wait their turn, with reading paused), and relays WebSocket sessions."""

    __slots__ = (
        "_authorization",
        "_chunked",
        "_connection",
        "_expect",
        "_headers",
        "_host",
        "_length",
        "_request_id",
        "_size",
        "_upgrade",
        "_url",
        "closed",
        "current",
        "eof",
        "feeding",
        "forwarded",
        "gw",
        "head_started",
        "idle_since",
        "ip",
        "parser",
        "parsing",
        "paused",
        "pipeline",
        "transport",
        "tunnel",
    )

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.forwarded = b""
        self.ip = ""
        self.current: Exchange | None = None  # the request being answered
        self.parsing: Exchange | None = None  # the request whose body is being read
        self.pipeline: deque[Exchange] = deque()
        self.paused: set[str] = set()
        self.feeding = False
        self.eof = False
        self.idle_since = time.monotonic()
        self.head_started = False
        self.tunnel: UpstreamConnection | None = None
        self.closed = False

    # ---- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.ip = peer[0] if peer else ""
        # The caller's address as the gateway saw it, replacing whatever the caller claimed.
        self.forwarded = h.forwarded_lines(self.ip)
        self.gw.clients.add(self)
        self.gw.metrics.connections["client"] += 1

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.last_activity = time.monotonic()  # for the WebSocket idle timeout
            self.tunnel.write(data)
            return
        self.feeding = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self.parsing is not None:
                self.parsing.on_client_upgrade_data(data[upgrade.args[0] :])
        except (httptools.HttpParserError, _TooLarge) as error:
            self._bad_request(error)
        finally:
            self.feeding = False
        if self.current is not None:
            self.current.flush_upstream()

    def eof_received(self) -> bool:
        if self.tunnel is not None:  # half-close of a WebSocket session: pass it on
            self.eof = True
            up = self.tunnel
            if up.tunnel_eof:  # both sides are done
                self.close_tunnel()
                return True
            if up.transport is not None and up.transport.can_write_eof():
                up.transport.write_eof()
            return True
        self.eof = True
        current = self.current
        if current is None:
            return False  # nothing in flight: close
        if not current.req_done:
            current.on_client_lost()  # the request was cut short: it cannot be completed
            return False
        current.close_after = True  # half-closed after a full request: answer, then close
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.gw.clients.discard(self)
        self.gw.metrics.connections["client"] -= 1
        if self.tunnel is not None:
            self.tunnel.abort()
        if self.current is not None:
            self.current.on_client_lost()
        self.pipeline.clear()

    def pause_writing(self) -> None:  # the caller reads slower than the replica sends
        up = self.tunnel or (self.current.up if self.current else None)
        if up is not None and up.transport is not None:
            up.transport.pause_reading()

    def resume_writing(self) -> None:
        up = self.tunnel or (self.current.up if self.current else None)
        if up is not None and up.transport is not None and not up.closed:
            up.transport.resume_reading()

    # ---- the tunnel's half of a WebSocket session (called by the UpstreamConnection) -------

    def peer_eof(self) -> None:
        if self.eof:  # the caller had already finished sending: both sides are done
            self.close_tunnel()
        elif self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()

    def close_tunnel(self) -> None:
        if self.tunnel is not None and self.tunnel.transport is not None:
            self.tunnel.transport.close()
        if self.transport is not None:
            self.transport.close()

    def peer_lost(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.current is not None:
            self.current.finish_tunnel()

    # ---- reading control ------------------------------------------------------------------

    def pause(self, reason: str) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused.add(reason)

    def resume(self, reason: str) -> None:
        if reason in self.paused:
            self.paused.discard(reason)
            if not self.paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    # ---- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.head_started = True
        self.idle_since = time.monotonic()  # the header timeout counts from here
        self._url = b""
        self._headers: h.Headers3 = []
        self._size = 0
        self._authorization: bytes | None = None
        self._host = b""
        self._connection: frozenset[bytes] = frozenset()
        self._expect = False
        self._request_id: bytes | None = None
        self._chunked = False
        self._length: bytes | None = None
        self._upgrade = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > h.MAX_TARGET_BYTES:
            raise _TooLarge(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._size += len(name) + len(value)
        if self._size > h.MAX_HEADER_BYTES:
            raise _TooLarge(431)
        lname = name.lower()
        self._headers.append((name, value, lname))
        if lname in _NOTED:  # the few headers the gateway itself reads
            if lname == b"authorization":
                self._authorization = value
            elif lname == b"host":
                self._host = value
            elif lname == b"connection":
                self._connection = self._connection | h.connection_tokens(value)
            elif lname == b"expect":
                self._expect = value.lower() == b"100-continue"
            elif lname == b"x-request-id":
                self._request_id = value
            elif lname == b"transfer-encoding":
                self._chunked = b"chunked" in value.lower()
            elif lname == b"content-length":
                self._length = value.strip()
            elif lname == b"upgrade":
                self._upgrade = value.strip().lower() == b"websocket"

    def on_headers_complete(self) -> None:
        parser = self.parser
        exchange = Exchange(
            self,
            parser.get_method(),
            self._url,
            self._headers,
            keep_alive=parser.should_keep_alive(),
            http10=parser.get_http_version() == "1.0",
        )
        self.parsing = exchange
        self.head_started = False
        if self.current is None:
            self.current = exchange
            exchange.start()
        else:  # a pipelined request: answered after the current one; stop reading meanwhile
            self.pipeline.append(exchange)
            self.pause("pipeline")

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.on_request_body(body)

    def on_message_complete(self) -> None:
        if self.parsing is not None:
            self.parsing.on_request_end()

    # ---- called by the Exchange --------------------------------------------------------------

    def exchange_done(self, exchange: Exchange) -> None:
        if self.current is not exchange:
            return
        self.current = None
        self.idle_since = time.monotonic()
        if exchange.close_after or not exchange.keep_alive or self.eof:
            if self.transport is not None:
                self.transport.close()  # after the buffered response has been written
            return
        if self.pipeline:
            self.current = self.pipeline.popleft()
            if not self.pipeline:
                self.resume("pipeline")
            self.current.start()
            self.current.flush_upstream()

    def _bad_request(self, error: Exception) -> None:
        # httptools re-raises what a callback raised as a parser error: the cause is inside.
        cause = error if isinstance(error, _TooLarge) else error.__context__
        status = cause.status if isinstance(cause, _TooLarge) else 400
        if self.current is None or not self.current.resp_started:
            body = json.dumps(
                {
                    "code": "invalid_request",
                    "message": h.REASONS[status].decode(),
                    "detail": [],
                    "requestId": None,
                }
            ).encode()
            if self.transport is not None:
                self.transport.write(
                    h.simple_response(status, body, content_type=b"application/json", close=True)
                )
        if self.current is not None:
            self.current.on_client_lost()
        if self.transport is not None:
            self.transport.close()


class _TooLarge(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


_NOTED: Final = frozenset(
    {
        b"authorization",
        b"host",
        b"connection",
        b"expect",
        b"x-request-id",
        b"transfer-encoding",
        b"content-length",
        b"upgrade",
    }
)
