"""The worker's HTTP port (`WAPI_WORKER_METRICS_PORT`): Prometheus `/metrics`, and `/livez` and
`/readyz` for the kubelet's probes.

- `/livez` answers 200 while the worker's event loop runs, 503 once the loop has not run a
  beat for `stale_after` seconds: a wedged loop heartbeats no activity (Temporal hands its
  supervisions to other workers anyway), and restarting the pod gives its capacity back.
- `/readyz` answers 200 while the worker polls its task queues, 503 before and once it starts
  stopping. No Service routes to workers: readiness paces rolling updates and disruption
  budgets (a new worker counts once it polls).

Served from threads, as prometheus_client's own server is, so a wedged event loop cannot
silence `/livez` too.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app

BEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 60.0


class WorkerHealth:
    def __init__(
        self,
        stale_after: float = STALE_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stale_after = stale_after
        self._clock = clock
        self._last_beat = clock()
        self.polling = False  # set while the worker polls Temporal

    def beat(self) -> None:
        self._last_beat = self._clock()

    def liveness(self) -> tuple[bool, str]:
        silent = self._clock() - self._last_beat
        if silent > self._stale_after:
            return False, f"the event loop has not run for {silent:.0f} s"
        return True, "alive"

    def readiness(self) -> tuple[bool, str]:
        return (True, "polling") if self.polling else (False, "not polling Temporal")

    async def keep_beating(self, every: float = BEAT_SECONDS) -> None:
        while True:
            self.beat()
            await asyncio.sleep(every)


def health_app(health: WorkerHealth, registry: CollectorRegistry) -> WSGIApplication:
    metrics = make_wsgi_app(registry)
    checks = {"/livez": health.liveness, "/readyz": health.readiness}

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        check = checks.get(environ.get("PATH_INFO", ""))
        if check is None:
            served: Iterable[bytes] = metrics(environ, start_response)
            return served
        ok, text = check()
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [text.encode()]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Probes every few seconds are not worth a log line each."""


def serve(port: int, host: str, health: WorkerHealth, registry: CollectorRegistry) -> WSGIServer:
    """Serve in a daemon thread; `shutdown()` the result to stop."""
    server = make_server(
        host, port, health_app(health, registry), _Server, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="wapi-worker-http", daemon=True).start()
    return server
