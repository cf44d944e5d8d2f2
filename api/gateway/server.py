"""The gateway's shared state in one process, its own endpoints, and its lifetime.

`Gateway` holds what every connection of a process shares: the control-plane view (`Access`),
the upstream pools, metrics, the audit queue, per-caller counts, and one sweeper task that
enforces every timeout once a second (a timer per request or per read would cost more than
the request). `running_gateway` builds one from `Settings` and serves it on a port that
other processes may share (SO_REUSEPORT).

Besides the invoke routes the gateway answers `GET /healthz` (the process is up, and which
one), `GET /readyz` (the first route table is loaded) and `GET /metrics` (see metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from api.gateway.access import Access
from api.gateway.connection import ClientConnection
from api.gateway.credentials import Credentials
from api.gateway.demand import Demand
from api.gateway.directory import ReplicaDirectory
from api.gateway.exchange import Exchange
from api.gateway.invocation_audit import InvocationAudit
from api.gateway.metrics import GatewayMetrics
from api.gateway.tracing import InvokeTracing
from api.gateway.traffic import TrafficLog
from api.gateway.upstream import Pools
from catalog import database
from config.settings import Settings
from services.tracing import configure as configure_tracing

log = logging.getLogger(__name__)

PROMETHEUS: Final = b"text/plain; version=0.0.4; charset=utf-8"
JSON: Final = b"application/json"


@dataclass(frozen=True)
class GatewayOptions:
    read_timeout: float = 300.0  # longest gap between bytes from a replica
    keepalive_timeout: float = 75.0  # idle caller connections are closed after this
    header_timeout: float = 10.0  # a request head must arrive within this (slowloris)
    websocket_idle_timeout: float = 300.0  # a session with no bytes either way is closed
    max_attempts: int = 3  # replicas tried when connections are refused
    max_calls_per_caller: int = 1000  # concurrent calls of one caller in this process
    cold_start_timeout: float = 60.0  # a call held at zero replicas waits this long for one
    metrics_token: str | None = None  # shows per-deployment metrics, as an admin key does
    metrics_public: bool = False  # per-deployment metrics for anyone (a trusted network)

    @classmethod
    def of(cls, settings: Settings) -> GatewayOptions:
        token = settings.metrics_token
        return cls(
            read_timeout=settings.gateway_timeout_seconds,
            websocket_idle_timeout=settings.gateway_websocket_idle_seconds,
            max_calls_per_caller=settings.gateway_max_calls_per_caller,
            cold_start_timeout=settings.gateway_cold_start_timeout_seconds,
            metrics_token=token.get_secret_value() if token else None,
            metrics_public=settings.metrics_deployment_labels,
        )


class Gateway:
    def __init__(
        self,
        access: Access,
        pools: Pools,
        metrics: GatewayMetrics,
        audit: InvocationAudit | None,
        options: GatewayOptions | None = None,
        traffic: TrafficLog | None = None,
        tracing: InvokeTracing | None = None,
        demand: Demand | None = None,
    ) -> None:
        self.access = access
        self.tracing = tracing  # spans of invoke calls, when tracing is configured
        self.pools = pools
        self.metrics = metrics
        self.audit = audit
        self.traffic = traffic  # per-minute counts of deployment calls, for their stats
        self.demand = demand or Demand(None)  # calls in flight per workload, for the autoscaler
        self.options = options or GatewayOptions()
        self.clients: set[ClientConnection] = set()
        self.callers: dict[str, int] = {}  # actor -> calls in flight
        self.turn = 0  # round robin over replicas
        # Request ids: a random prefix per process and a counter (a fresh random id per
        # request costs a system call).
        self._id_prefix = os.urandom(4).hex().encode()
        self._id_counter = 0
        self._sweeper: asyncio.Task[None] | None = None

    def request_id(self) -> bytes:
        self._id_counter += 1
        return b"%s%08x" % (self._id_prefix, self._id_counter & 0xFFFFFFFF)

    def protocol(self) -> ClientConnection:
        return ClientConnection(self)

    def fail(self, reason: str) -> None:
        self.metrics.count(self.metrics.failures, reason)

    # ---- the gateway's own endpoints ---------------------------------------------------------

    def answer_own(self, exchange: Exchange) -> None:
        path = exchange.url.partition(b"?")[0]
        if exchange.method not in (b"GET", b"HEAD"):
            exchange.respond_error(404, "not_found", "no such route")
        elif path == b"/healthz":
            body = {"status": "ok", "process": os.getpid()}
            exchange.respond(200, json.dumps(body).encode(), JSON)
        elif path == b"/readyz":
            ready = self.access.directory.loaded
            body = {"status": "ready" if ready else "loading the route table"}
            exchange.respond(200 if ready else 503, json.dumps(body).encode(), JSON)
        elif path == b"/metrics":
            exchange.spawn(self._metrics(exchange))
        else:
            exchange.respond_error(404, "not_found", "no such route")

    async def _metrics(self, exchange: Exchange) -> None:
        per_deployment = await self._may_see_deployments(exchange.authorization)
        exchange.respond(200, self.metrics.exposition(per_deployment=per_deployment), PROMETHEUS)

    async def _may_see_deployments(self, authorization: bytes | None) -> bool:
        """Deployment ids are shown to the metrics token and to admin API keys only (the invoke
        route answers 403 whether a deployment exists or not), unless configured public."""
        return await self.access.credentials.may_see_resource_ids(
            authorization, token=self.options.metrics_token, public=self.options.metrics_public
        )

    # ---- timeouts --------------------------------------------------------------------------

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def _sweep(self) -> None:
        """Once a second: idle upstream connections, read timeouts, idle callers and
        WebSocket sessions; this process's metrics saved for the others."""
        while True:
            await asyncio.sleep(1.0)
            try:
                self.sweep(time.monotonic())
            except Exception:  # a bug here must not stop the timeouts for good
                log.exception("gateway sweep failed")
            await self.metrics.save_off_loop()

    def sweep(self, now: float) -> None:
        self.pools.sweep(now)
        options = self.options
        for client in list(self.clients):
            exchange = client.current
            tunnel = client.tunnel
            if tunnel is not None:
                if now - tunnel.last_activity > options.websocket_idle_timeout:
                    self.fail("websocket_idle")
                    client.close_tunnel()
            elif exchange is None:
                limit = options.header_timeout if client.head_started else options.keepalive_timeout
                if now - client.idle_since > limit and client.transport is not None:
                    client.transport.close()
            elif (
                exchange.up is not None
                and not exchange.resp_done
                and now - exchange.up.last_activity > options.read_timeout
            ):
                exchange.on_upstream_failure("timeout", "did not answer in time", 504)

    async def drain(self, grace: float) -> None:
        """Let calls in flight finish (up to `grace` seconds); close idle connections now."""
        deadline = time.monotonic() + grace
        while True:
            for client in list(self.clients):
                if client.current is None and client.tunnel is None and client.transport:
                    client.transport.close()
            if not self.clients or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        for client in list(self.clients):
            if client.transport is not None:
                client.transport.abort()


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other processes may bind too (SO_REUSEPORT): the kernel then
    spreads new connections over every process listening on the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


@asynccontextmanager
async def running_gateway(
    settings: Settings, sock: socket.socket, *, grace: float = 10.0
) -> AsyncIterator[Gateway]:
    """A gateway serving `sock` with the catalog of `settings`, until the context ends."""
    engine = database.create_engine(settings.catalog_url)
    reads = database.create_read_sessionmaker(engine)
    metrics_dir = settings.gateway_metrics_dir
    metrics_dir.mkdir(parents=True, exist_ok=True)
    metrics = GatewayMetrics(metrics_dir)
    directory = ReplicaDirectory(reads)
    audit = InvocationAudit(database.create_sessionmaker(engine), metrics)
    access = Access(
        directory,
        Credentials(reads),
        reads,
        default_max_body_bytes=settings.gateway_max_body_bytes,
    )
    pools = Pools(
        metrics,
        limit_per_replica=settings.gateway_max_connections_per_replica,
        acquire_timeout=settings.gateway_acquire_timeout_seconds,
    )
    traffic = TrafficLog(
        database.create_sessionmaker(engine),
        flush_seconds=settings.gateway_traffic_flush_seconds,
        retention=timedelta(days=settings.traffic_retention_days),
    )
    tracing = InvokeTracing() if configure_tracing(settings, "wapi-gateway") else None
    demand = Demand(database.create_sessionmaker(engine))
    gateway = Gateway(
        access, pools, metrics, audit, GatewayOptions.of(settings), traffic,
        tracing=tracing, demand=demand,
    )  # fmt: skip
    await directory.start()
    demand.start()
    audit.start()
    traffic.start()
    gateway.start()
    server = await asyncio.get_running_loop().create_server(gateway.protocol, sock=sock)
    try:
        yield gateway
    finally:
        server.close()
        await gateway.drain(grace)
        await gateway.stop()
        await audit.stop()
        await traffic.stop()
        await demand.stop()
        metrics.save()
        await directory.stop()
        await engine.dispose()
