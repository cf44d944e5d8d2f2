"""The invoke gateway for tests: in the test's own event loop, or in a thread of its own, or as
real `wapi gateway` processes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from api.gateway.server import Gateway, listening_socket, running_gateway
from config.settings import Settings
from tests.support.postgres import free_port
from tests.support.processes import WapiProcess


@dataclass
class Running:
    gateway: Gateway
    url: str

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@asynccontextmanager
async def gateway_in_loop(settings: Settings, **overrides: object) -> AsyncIterator[Running]:
    """A gateway on a free loopback port, in this event loop, with its first route table
    loaded."""
    settings = settings.model_copy(update={"gateway_port": free_port(), **overrides})
    sock = listening_socket("127.0.0.1", settings.gateway_port)
    async with running_gateway(settings, sock, grace=0) as gateway:
        await gateway.access.directory.refresh()
        yield Running(gateway, f"http://127.0.0.1:{settings.gateway_port}")


@contextmanager
def gateway_in_thread(settings: Settings) -> Iterator[str]:
    """A gateway on `settings.gateway_port`, in a thread with its own event loop (as a
    separate process would be, but cheaper to start); yields its base URL."""
    started = threading.Event()
    stop: list[asyncio.Event] = []
    urls: list[str] = []
    failures: list[BaseException] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        try:
            async with gateway_in_loop(settings, gateway_port=settings.gateway_port) as running:
                urls.append(running.url)
                started.set()
                await stop[0].wait()
        except BaseException as error:
            failures.append(error)
            started.set()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(30) or failures:
        raise RuntimeError(f"the test gateway did not start: {failures}")
    try:
        yield urls[0]
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(30)
        loop.close()


class GatewayProcess(WapiProcess):
    """`python -m cli gateway --processes N` with the test's settings."""

    command = "gateway"

    def __init__(self, settings: Settings, log_file: Path, processes: int = 1) -> None:
        super().__init__(settings, log_file)
        self.processes = processes

    def arguments(self) -> list[str]:
        return ["--processes", str(self.processes)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_port}"

    def wait_ready(self, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, (
                self.log_file.read_text()
            )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the gateway did not get ready: {self.log_file.read_text()}")
