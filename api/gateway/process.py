"""`wapi gateway`: the invoke gateway as processes of its own, apart from the management API.

Each process runs one event loop (uvloop) and binds the gateway port with SO_REUSEPORT, so the
kernel spreads new connections over every process on the port: `--processes N` forks N of
them from one supervisor, and gateways started separately on the same port join in too. The
supervisor restarts a process that dies and, on SIGTERM or SIGINT, stops them all; each
stops accepting, lets calls in flight finish (up to 10 s) and writes its queued audit records.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from types import FrameType

import uvloop

from api.gateway.metrics import forget_exited
from api.gateway.server import listening_socket, running_gateway
from config.settings import Settings

log = logging.getLogger(__name__)


def run(settings: Settings, processes: int) -> int:
    """Serve until SIGTERM/SIGINT; the exit status."""
    settings.gateway_metrics_dir.mkdir(parents=True, exist_ok=True)
    forget_exited(settings.gateway_metrics_dir)
    if processes <= 1:
        return serve(settings)
    return Supervisor(settings, processes).run()


def serve(settings: Settings) -> int:
    """One gateway process: serve in this process until told to stop."""
    uvloop.install()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(settings))
    return 0


async def _serve(settings: Settings) -> None:
    sock = listening_socket(settings.gateway_host, settings.gateway_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running_gateway(settings, sock):
        # What exists now lives as long as the process: keep it out of the collector's full
        # passes, which otherwise pause every request in flight.
        gc.collect()
        gc.freeze()
        log.info(
            "gateway serving",
            extra={"address": f"{settings.gateway_host}:{settings.gateway_port}"},
        )
        await stop.wait()


class Supervisor:
    """Forks the gateway processes, restarts one that dies, stops them all on a signal."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self.settings = settings
        self.processes = processes
        self.children: dict[int, int] = {}  # pid -> slot
        self.stopping = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for slot in range(self.processes):
            self._fork(slot)
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if pid not in self.children:
                continue
            slot = self.children.pop(pid)
            if self.stopping:
                continue
            log.error("gateway process %d exited (status %d); starting another", pid, status)
            time.sleep(0.5)  # a process that cannot start must not spin the machine
            self._fork(slot)
        return 0

    def _fork(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = serve(self.settings)
            except Exception:
                log.exception("gateway process failed")
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = slot

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
