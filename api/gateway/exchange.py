"""One request and its response: route, authorize, forward, relay, account.

Why one module of this length: an exchange is one state machine (request head, request body,
response head, response body, the end), driven from both sides, the caller's connection and
the replica's. Its transitions are easier to check when they sit together.

The hot path of a GET that hits warm caches creates no coroutine, Task or Future:

  caller data -> httptools -> `start` -> `Access.authorize`/`route` (dict lookups)
      -> `Pools.acquire_nowait` (an idle connection) -> request head buffered
  end of the caller's read: one write to the replica
  replica data -> httptools -> `on_response_head`/`_body`/`_end`
  end of the replica's read: one write to the caller; the connection goes back to its pool.

Anything that has to wait (a cache miss, a new upstream connection, a full pool) moves the
request to a coroutine (`_slow_start`, `_slow_connect`) and the machine carries on from there.
So does a call to a workload scaled to zero (`_wait_for_replica`): it is held, published as
demand for the autoscaler, until a replica is ready, or answered 503 with Retry-After.

What it keeps from the gateway's first version: the prefix stripped and the path and query
forwarded exactly as sent; bodies streamed both ways; hop-by-hop headers dropped; the next
replica tried when a connection is refused (up to 3); 502 for a broken answer, 503 for no
replica, 504 for a slow one; metrics and an audit record per deployment call; WebSocket
sessions relayed (as a byte tunnel after the replica's 101, which passes pings, close codes
and negotiated extensions through untouched).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Final

from opentelemetry.trace import Span

from api.error_status import status_for
from api.gateway import headers as h
from api.gateway.access import ANONYMOUS, Caller, CallerRefused, ColdStart, Decision, Kind, Miss
from api.gateway.paths import invoke_route
from api.gateway.tracing import without_trace_headers
from api.gateway.upstream import PoolTimeoutError, UpstreamConnection
from services.errors import DomainError, PayloadTooLargeError, TooManyRequestsError

if TYPE_CHECKING:
    from api.gateway.connection import ClientConnection

log = logging.getLogger(__name__)

IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS"})
BUFFER_LIMIT: Final = 64 * 1024  # request body held while no replica is attached yet
COLD_START_POLL: Final = 0.1  # a held call looks for a ready replica this often
COLD_START_RETRY_AFTER: Final = 5


class Exchange:
    __slots__ = (
        "attempt",
        "authorization",
        "body_seen",
        "caller",
        "chunked",
        "client",
        "close_after",
        "connection_tokens",
        "continue_sent",
        "counted",
        "decision",
        "expect",
        "finished",
        "gw",
        "has_body",
        "head_only",
        "headers",
        "holding",
        "host",
        "http10",
        "interim",
        "keep_alive",
        "kind",
        "length",
        "method",
        "out",
        "req_body_sent",
        "req_buf",
        "req_buf_size",
        "req_done",
        "request_id",
        "resp_chunked",
        "resp_done",
        "resp_keep_alive",
        "resp_started",
        "resp_status",
        "retried_cold",
        "span",
        "started",
        "target",
        "target_id",
        "task",
        "trace_lines",
        "tunnel_open",
        "up",
        "up_eof_body",
        "up_out",
        "upgrade_data",
        "url",
        "websocket",
    )

    def __init__(
        self,
        client: ClientConnection,
        method: bytes,
        url: bytes,
        headers: h.Headers3,
        *,
        keep_alive: bool,
        http10: bool,
    ) -> None:
        self.client = client
        self.gw = client.gw
        self.method = method
        self.url = url
        self.headers = headers
        self.keep_alive = keep_alive
        self.http10 = http10
        self.started = time.perf_counter()
        rid = client._request_id
        sane = rid and len(rid) <= 64 and rid.isascii() and rid.decode("ascii").isprintable()
        self.request_id = rid if rid and sane else self.gw.request_id()
        self.kind: Kind | None = None  # set for invoke paths
        self.target_id = ""
        self.caller: Caller | None = None
        self.decision: Decision | None = None
        self.counted = False  # in the metrics' in-flight gauges
        self.holding = False  # one of the caller's concurrent calls
        self.target = b"/"  # what goes upstream: the path after the prefix, and the query
        self.attempt = 0
        self.up: UpstreamConnection | None = None
        self.up_out: list[bytes] = []  # writes to the replica batched during a client read
        self.req_buf: list[bytes] = []  # body that arrived before a replica was attached
        self.req_buf_size = 0
        self.req_done = False
        self.req_body_sent = False
        self.body_seen = 0
        self.resp_status = 0
        self.resp_started = False
        self.resp_done = False
        self.resp_chunked = False
        self.up_eof_body = False
        self.resp_keep_alive = False
        self.out: list[bytes] = []  # writes to the caller batched during a replica read
        self.close_after = False
        self.head_only = method == b"HEAD"
        self.interim = False
        self.task: asyncio.Task[None] | None = None
        self.finished = False
        self.chunked = client._chunked
        self.length = client._length
        # No body follows the head: the request is complete as far as answering goes.
        self.has_body = self.chunked or (self.length is not None and self.length != b"0")
        self.expect = client._expect
        # Captured now: with pipelining the connection's fields move on to the next request.
        self.authorization = client._authorization
        self.host = client._host
        self.connection_tokens = client._connection
        self.websocket = client._upgrade and method == b"GET"
        self.upgrade_data = b""
        self.tunnel_open = False
        self.continue_sent = False
        self.span: Span | None = None  # the invoke's span, when the gateway traces
        self.trace_lines = b""  # the traceparent the replica gets instead of the caller's
        self.retried_cold = False  # held once after every replica refused (scaling to zero)

    # ---- start: route, authorize, attach to a replica ------------------------------------

    def start(self) -> None:
        route = invoke_route(self.url)
        if route is None:
            self.gw.answer_own(self)  # /healthz, /readyz, /metrics, or 404
            return
        self.kind, self.target_id, self.target = route
        access = self.gw.access
        try:
            self.caller = access.authorize(self.kind, self.target_id, self.authorization)
            self.decision = access.route(self.kind, self.target_id, self.caller, self.headers)
        except Miss:
            self.spawn(self._slow_start())
            return
        except ColdStart as cold:
            self.spawn(self._wait_for_replica(cold.workload))
            return
        except DomainError as error:
            if isinstance(error, CallerRefused):
                self.caller = error.caller
            self.refuse(error)
            return
        self._admit(self.decision)

    async def _slow_start(self) -> None:
        """Cache misses: load what is missing (one catalog lookup per key), then go on."""
        assert self.kind is not None
        access, kind, target_id = self.gw.access, self.kind, self.target_id
        try:
            if self.caller is None:
                self.caller = await access.settled(
                    lambda: access.authorize(kind, target_id, self.authorization)
                )
            caller = self.caller
            self.decision = await access.settled(
                lambda: access.route(kind, target_id, caller, self.headers)
            )
        except ColdStart as cold:
            await self._wait_for_replica(cold.workload)
            return
        except DomainError as error:
            if isinstance(error, CallerRefused):
                self.caller = error.caller
            self.refuse(error)
            return
        except Exception as error:  # the catalog is away and nothing is known about this key
            log.warning("gateway lookup failed", extra={"error": repr(error)})
            self.respond_error(
                503,
                "catalog_unavailable",
                "the catalog database is not answering; try again shortly",
                5,
            )
            return
        self._admit(self.decision)

    async def _wait_for_replica(self, workload: str) -> None:
        """The workload is at zero: hold the call until a replica is ready, then go on."""
        gw = self.gw
        gw.demand.hold(workload)
        try:
            decision = await self._ready_decision(())
        finally:
            gw.demand.release(workload)
        if decision is not None:
            self.decision = decision
            self._admit(decision)

    async def _ready_decision(self, refused: tuple[str, ...]) -> Decision | None:
        """Wait (held calls are published as demand, so the autoscaler starts a replica)
        until the route has a ready replica other than the `refused` ones; None when the
        answer has been given instead (503 past the cold-start timeout, or a refusal).
        Every call waiting for the same workload waits on the same start."""
        assert self.kind is not None and self.caller is not None
        gw, access = self.gw, self.gw.access
        kind, target_id, caller = self.kind, self.target_id, self.caller
        deadline = time.monotonic() + gw.options.cold_start_timeout
        while True:
            await asyncio.sleep(COLD_START_POLL)
            try:
                decision = await access.settled(
                    lambda: access.route(kind, target_id, caller, self.headers)
                )
                if decision.addresses != refused:
                    return decision
            except ColdStart:
                pass
            except DomainError as error:
                self.refuse(error)
                return None
            if time.monotonic() >= deadline:
                gw.fail("cold_start_timeout")
                self.respond_error(
                    503,
                    "unavailable",
                    f"{self._what()} is scaled to zero and no replica was ready within "
                    f"{gw.options.cold_start_timeout:g} s; try again shortly",
                    COLD_START_RETRY_AFTER,
                )
                return None

    async def _after_refusals(self, decision: Decision) -> bool:
        """Every replica refused: if the workload may scale to zero, it is likely going there
        (the route table lags the removal by up to half a second), so hold the call as at
        zero and connect again once a replica is ready. False if not such a workload."""
        gw = self.gw
        if not await gw.access.directory.scales_to_zero(decision.workload):
            return False
        gw.demand.remove(decision.workload)
        gw.demand.hold(decision.workload)
        try:
            fresh = await self._ready_decision(decision.addresses)
        finally:
            gw.demand.release(decision.workload)
            gw.demand.add(decision.workload)
        if fresh is not None:
            self.decision = fresh
            await self._slow_connect(tries=0)
        return True

    def _admit(self, decision: Decision) -> None:
        """The limits that apply once the caller and the target are known, then upstream."""
        gw = self.gw
        declared = _size(self.length) if self.length is not None else self.body_seen
        if declared > decision.max_body_bytes:
            gw.fail("body_too_large")
            self.refuse(_too_large(decision))
            return
        callers = gw.callers
        running = callers.get(decision.actor, 0)
        if running >= gw.options.max_calls_per_caller:
            gw.fail("caller_limit")
            self.refuse(
                TooManyRequestsError(
                    f"you have {running} calls in flight through this gateway process, its limit;"
                    " try again shortly",
                    retry_after_seconds=1,
                )
            )
            return
        callers[decision.actor] = running + 1
        self.holding = True
        gw.metrics.started(decision.kind, decision.deployment)
        gw.demand.add(decision.workload)
        self.counted = True
        self._connect()

    def _connect(self) -> None:
        decision = self.decision
        assert decision is not None
        self.gw.turn += 1
        self.attempt = self.gw.turn
        connection = self.gw.pools.acquire_nowait(decision.replica(self.attempt))
        if connection is not None:
            self._attach(connection)
        else:
            self.spawn(self._slow_connect(tries=0))

    def spawn(self, work: Coroutine[None, None, None]) -> None:
        """Leave the fast path: carry on in a Task (misses, new connections, full pools)."""
        self.task = asyncio.get_running_loop().create_task(work)
        self.task.add_done_callback(self._slow_done)

    def _slow_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:  # a bug: answer rather than leave the caller hanging
            log.error("gateway error", exc_info=error)
            self.respond_error(502, "bad_gateway", "the gateway could not forward the request")
            if self.up is not None:
                up, self.up = self.up, None
                self.gw.pools.release(up, reusable=False)

    async def _slow_connect(self, tries: int) -> None:
        """Open (or wait for) a connection; on refusal try the next replica."""
        decision = self.decision
        assert decision is not None
        pools = self.gw.pools
        what = decision.what()
        limit = min(len(decision.addresses), self.gw.options.max_attempts)
        timed_out = False
        while tries < limit:
            address = decision.replica(self.attempt + tries)
            tries += 1
            try:
                connection = await pools.acquire(address)
            except PoolTimeoutError:
                self.gw.fail("pool_timeout")
                self.respond_error(
                    503, "unavailable", f"{what} is at its connection limit; try again shortly", 1
                )
                return
            except TimeoutError:
                self.gw.fail("connect_timeout")
                timed_out = True
                continue
            except OSError:  # refused, unreachable, reset during connect
                self.gw.fail("refused")
                continue
            if self.client.closed:  # the caller left while we waited
                pools.release(connection, reusable=True)
                return
            self.attempt += tries - 1
            self._attach(connection)
            self.flush_upstream()
            return
        if not timed_out and not self.retried_cold:
            self.retried_cold = True
            if await self._after_refusals(decision):
                return
        log.warning("no replica accepted the connection: %s", what)
        if timed_out:
            self.respond_error(
                504, "upstream_timeout", f"{what} did not accept a connection in time"
            )
        else:
            self.respond_error(
                503, "unavailable", f"{what} refused or closed the connection; try again shortly", 1
            )

    def _attach(self, connection: UpstreamConnection) -> None:
        """Send the request head (and any body already read) on `connection`."""
        self.up = connection
        connection.exchange = self
        connection.last_activity = time.monotonic()
        connection.awaiting_head = True  # the next bytes from the replica begin its answer
        connection.head_buf = b""
        if self.length is not None:
            framing = b"Content-Length: %s\r\n" % self.length
        elif self.chunked:
            framing = b"Transfer-Encoding: chunked\r\n"
        else:
            framing = b""
        client = self.client
        headers = self.headers
        tracing = self.gw.tracing
        if tracing is not None and self.kind is not None:
            if self.span is None:
                self.span = tracing.begin(self.kind, self.target_id, self.method, headers)
                self.trace_lines = tracing.header_lines(self.span)
            headers = without_trace_headers(headers)
        forwarded = b"%sX-Forwarded-Host: %s\r\nX-Request-ID: %s\r\n%s" % (
            client.forwarded,
            self.host,
            self.request_id,
            self.trace_lines,
        )
        self._up_write(
            h.request_head(
                self.method,
                self.target,
                headers,
                host=connection.pool.host_header,
                forwarded=forwarded,
                framing=framing,
                named_in_connection=self.connection_tokens,
                websocket=self.websocket,
            )
        )
        if self.req_buf:
            for part in self.req_buf:
                self._up_write(h.chunk(part) if self.chunked else part)
            self.req_body_sent = True
            self.req_buf = []
            self.req_buf_size = 0
            client.resume("buffer")
        if self.req_done:
            if self.chunked:
                self._up_write(h.LAST_CHUNK)
        elif self.expect and not self.req_body_sent and not self.continue_sent:
            # The caller waits for this before sending its body. The replica never sees
            # `Expect` (many never answer it), so the gateway answers once it can forward.
            self.continue_sent = True
            self._client_write(h.CONTINUE)
            self.flush_client()
        if self.upgrade_data:
            self._up_write(self.upgrade_data)
            self.upgrade_data = b""

    # ---- the request body (from ClientConnection) ------------------------------------------

    def on_request_body(self, body: bytes) -> None:
        if self.finished or self.resp_done:
            return  # answered already (an error): the rest of the body is discarded
        self.body_seen += len(body)
        decision = self.decision
        if decision is not None and self.body_seen > decision.max_body_bytes:
            self._body_too_large(decision)  # a chunked body grew past the limit
            return
        if self.up is not None:
            self.req_body_sent = True
            self._up_write(h.chunk(body) if self.chunked else body)
            return
        self.req_buf.append(body)
        self.req_buf_size += len(body)
        if self.req_buf_size > BUFFER_LIMIT:
            self.client.pause("buffer")

    def _body_too_large(self, decision: Decision) -> None:
        self.gw.fail("body_too_large")
        up, self.up = self.up, None
        if up is not None:  # the replica has part of a body that will never end
            up.exchange = None
            self.gw.pools.release(up, reusable=False)
        if self.resp_started:
            self._abort_client("body_too_large")
        else:
            self.refuse(_too_large(decision))

    def on_request_end(self) -> None:
        self.req_done = True
        if self.up is not None and self.chunked and not self.resp_done:
            self._up_write(h.LAST_CHUNK)
        if self.resp_done:
            self._complete()

    def on_client_upgrade_data(self, data: bytes) -> None:
        """Bytes after a WebSocket handshake, sent before the 101 (held until the tunnel)."""
        if not self.websocket:
            # Another protocol (h2c...): answered as a plain request. llhttp stops at an
            # upgrade, so this connection cannot carry another request: close after.
            self.close_after = True
            return
        if self.up is not None and self.tunnel_open:
            self.up.write(data)
        else:
            self.upgrade_data += data
            self.client.pause("upgrade")

    def _up_write(self, data: bytes) -> None:
        if self.client.feeding:
            self.up_out.append(data)
        elif self.up is not None:
            self.up.write(data)

    def flush_upstream(self) -> None:
        if self.up_out and self.up is not None:
            out, self.up_out = self.up_out, []
            self.up.write(out[0] if len(out) == 1 else b"".join(out))

    # ---- the response (from UpstreamConnection) --------------------------------------------

    def on_response_head(self, status: int, keep_alive: bool, up: UpstreamConnection) -> None:
        if 100 <= status < 200 and not (status == 101 and self.websocket):
            self.interim = True  # 103 Early Hints and the like are not passed on
            return
        self.resp_status = status
        self.resp_keep_alive = keep_alive
        head = up.head
        assert head is not None
        length = head.length
        extra = b"" if head.has_request_id else b"X-Request-ID: %s\r\n" % self.request_id
        if status == 101:
            extra += b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
            self.resp_started = True
            self._client_write(h.response_head(101, head, framing=b"", extra=extra))
            return  # the tunnel opens in on_upgraded, when the parser stops
        no_body = self.head_only or status in (204, 304)
        # No length and not chunked: the replica ends the body by closing (HTTP/1.0 style).
        self.up_eof_body = not no_body and length is None and not head.chunked
        close = self.close_after or not self.keep_alive or self.client.eof
        if no_body:
            framing = (
                b"Content-Length: %s\r\n" % length if length is not None and status != 204 else b""
            )
        elif length is not None:
            framing = b"Content-Length: %s\r\n" % length
        elif self.http10:
            # An HTTP/1.0 caller cannot take chunks: the end of the body is the close.
            framing, close = b"", True
        else:
            framing = b"Transfer-Encoding: chunked\r\n"
            self.resp_chunked = True
        if self.has_body and not self.req_done:
            close = True  # the replica answered before the body ended (413, 401...): unread
        if self.websocket:
            close = True  # a refused handshake: the caller's parser stopped at the upgrade
        if close:
            framing += b"Connection: close\r\n"
            self.close_after = True
        elif self.http10:
            framing += b"Connection: keep-alive\r\n"
        self._client_write(h.response_head(status, head, framing=framing, extra=extra))
        self.resp_started = True
        if self.head_only and self.up is not None:
            # llhttp would wait for the Content-Length bytes a HEAD answer never carries.
            self.up.stale_parser = True
            self.on_response_end()

    def on_response_body(self, body: bytes) -> None:
        if self.resp_started and not self.head_only:
            self._client_write(h.chunk(body) if self.resp_chunked else body)

    def on_response_end(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.resp_done or self.resp_status == 101:  # a 101 is followed by the tunnel
            return
        if self.resp_chunked:
            self._client_write(h.LAST_CHUNK)
        self.resp_done = True
        self.flush_client()
        up, self.up = self.up, None
        if up is not None:
            reusable = (
                self.resp_keep_alive and (self.req_done or not self.has_body) and not self.websocket
            )
            self.gw.pools.release(up, reusable=reusable)
        if self.req_done or self.close_after or not self.has_body:
            self._complete()

    def on_upgraded(self, data: bytes) -> None:
        """The replica accepted the WebSocket handshake: relay bytes both ways from now on."""
        up = self.up
        if up is None or self.resp_status != 101:
            return
        self.tunnel_open = True
        if data:
            self._client_write(data)
        self.flush_client()
        client = self.client
        up.tunnel = client
        up.exchange = None
        client.tunnel = up
        if self.upgrade_data:
            up.write(self.upgrade_data)
            self.upgrade_data = b""
        client.resume("upgrade")

    def finish_tunnel(self) -> None:
        self._finish(101)

    def on_upstream_lost(self, connection: UpstreamConnection) -> None:
        """The replica's connection closed while this exchange was using it."""
        if self.resp_done or self.finished:
            return
        if self.resp_started and self.up_eof_body:
            self.resp_keep_alive = False
            self.on_response_end()  # a body delimited by the close: this is its end
            return
        self.up = None
        if not self.resp_started:
            # A reused connection the replica had just closed: safe to send again when the
            # request has no body and is idempotent (as nginx and the first gateway did).
            retry = (
                connection.served > 0
                and self.method in IDEMPOTENT
                and self.length is None
                and not self.chunked
            )
            if retry:
                self.gw.fail("stale_connection")
                self.spawn(self._slow_connect(tries=0))
                return
            self.gw.fail("reset")
            self.respond_error(502, "bad_gateway", f"{self._what()} closed the connection early")
            return
        self._abort_client("reset")

    def on_upstream_failure(self, kind: str, message: str, status: int = 502) -> None:
        """Unreadable answer or read timeout: 502/504 if nothing was sent yet, else cut off."""
        if self.resp_done or self.finished:
            return
        self.gw.fail(kind)
        up, self.up = self.up, None
        if up is not None:
            up.exchange = None
            self.gw.pools.release(up, reusable=False)
        if not self.resp_started:
            code = "upstream_timeout" if status == 504 else "bad_gateway"
            self.respond_error(status, code, f"{self._what()} {message}")
        else:
            self._abort_client(kind)

    def _abort_client(self, kind: str) -> None:
        # Headers have gone out: all that is left is to end the stream early. Without the last
        # chunk (or with fewer bytes than Content-Length) the caller knows it was cut off.
        log.warning("the upstream answer broke off (%s): %s", kind, self._what())
        self.flush_client()
        if self.client.transport is not None:
            self.client.transport.close()
        self._finish(self.resp_status)

    def _client_write(self, data: bytes) -> None:
        up = self.up
        if up is not None and up.feeding:
            self.out.append(data)
        elif self.client.transport is not None:
            self.client.transport.write(data)

    def flush_client(self) -> None:
        if self.out and self.client.transport is not None:
            out, self.out = self.out, []
            self.client.transport.write(out[0] if len(out) == 1 else b"".join(out))

    # ---- answers from the gateway itself -------------------------------------------------

    def refuse(self, error: DomainError) -> None:
        retry_after = getattr(error, "retry_after_seconds", 0)
        self.respond_error(status_for(error), error.code, error.message, retry_after)

    def respond_error(self, status: int, code: str, message: str, retry_after: int = 0) -> None:
        """Answer with the API's error body, unless the response has begun."""
        if self.resp_started or self.finished:
            return
        body = json.dumps(
            {"code": code, "message": message, "detail": [], "requestId": self.request_id.decode()}
        ).encode()
        extra = b"X-Request-ID: %s\r\n" % self.request_id
        if status == 401:
            extra += b"WWW-Authenticate: Bearer\r\n"
        if retry_after:
            extra += b"Retry-After: %d\r\n" % retry_after
        self.respond(status, body, b"application/json", extra)

    def respond(self, status: int, body: bytes, content_type: bytes, extra: bytes = b"") -> None:
        """A complete answer of the gateway's own (errors, /healthz, /metrics)."""
        if self.resp_started or self.finished:
            return
        # A body the caller may still be sending is not read: close after answering.
        unread = self.has_body and not self.req_done
        close = unread or not self.keep_alive or self.client.eof or self.websocket
        self.close_after = self.close_after or close
        if self.head_only:
            body = b""
        if self.client.transport is not None:
            self.client.transport.write(
                h.simple_response(
                    status, body, content_type=content_type, extra=extra, close=self.close_after
                )
            )
        self.resp_status = status
        self.resp_started = True
        self.resp_done = True
        self._complete()

    # ---- the end ---------------------------------------------------------------------------

    def on_client_lost(self) -> None:
        """The caller went away (or sent a broken request): drop the upstream side."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        up, self.up = self.up, None
        if up is not None:
            self.gw.pools.release(up, reusable=False)
        if not self.finished:
            done = self.resp_done or self.tunnel_open
            self._finish(self.resp_status if done else 499)  # 499: the caller left first

    def _complete(self) -> None:
        if self.finished:
            return
        self._finish(self.resp_status)
        self.client.exchange_done(self)

    def _finish(self, status: int) -> None:
        """Limits released, metrics and audit: once per request."""
        if self.finished:
            return
        self.finished = True
        kind = self.kind
        if kind is None:
            return  # not an invoke call
        gw = self.gw
        if self.span is not None and gw.tracing is not None:
            gw.tracing.end(self.span, status)
        decision = self.decision
        if self.holding and decision is not None:
            running = gw.callers[decision.actor] - 1
            if running:
                gw.callers[decision.actor] = running
            else:
                del gw.callers[decision.actor]
        seconds = time.perf_counter() - self.started
        deployment = self.target_id if kind == "deployment" else None
        gw.metrics.finished(kind, deployment, status, seconds, started=self.counted)
        if self.counted and decision is not None:
            gw.demand.remove(decision.workload)
        if deployment is not None and self.counted and gw.traffic is not None:
            workload = decision.workload if decision is not None else None
            gw.traffic.record(deployment, status, seconds, workload)
        elif (
            kind == "workload"
            and self.counted
            and gw.traffic is not None
            and decision is not None
            and self.target_id in gw.access.directory.routes.replacing
        ):
            # A workload being replaced in place: its analysis compares both sides' calls.
            gw.traffic.record_workload(decision.workload, status, seconds)
        if gw.audit is not None:
            caller = self.caller
            actor, actor_kind = caller if caller is not None else ANONYMOUS
            # Bytes as they are: decoding waits for the batch writer, off the request path.
            gw.audit.record(
                (
                    kind,
                    self.target_id,
                    actor,
                    actor_kind,
                    status,
                    b"WEBSOCKET" if self.websocket else self.method,
                    self.target,
                    self.request_id,
                    self.client.ip,
                    time.time(),
                    seconds,
                )
            )

    def _what(self) -> str:
        return f"{self.kind} '{self.target_id}'" if self.kind else "the target"


def _size(length: bytes) -> int:
    """A Content-Length llhttp accepted (digits; a list of equal values is refused there)."""
    try:
        return int(length)
    except ValueError:
        return 1 << 62


def _too_large(decision: Decision) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the request body is larger than {decision.what()} accepts"
        f" ({decision.max_body_bytes} bytes)"
    )
