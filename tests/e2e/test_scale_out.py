"""Two workers and two API processes on one PostgreSQL catalog and one Temporal server behave
as one product: workloads are supervised by both workers; a worker killed with SIGKILL hands
every workload it supervised to the other within its heartbeat timeout plus a few seconds,
with no container duplicated, recreated or left behind."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiodocker
import httpx
import pytest

from runtimes.base import LABEL_WORKLOAD
from runtimes.factory import build_runtime
from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import WORKLOADS, eventually, stack_settings
from tests.e2e.test_faults import connect
from tests.e2e.test_workload_lifecycle import READY
from tests.support import catalogs
from tests.support.processes import ApiProcess, DevServer, WorkerProcess
from workflows.common import HEARTBEAT_TIMEOUT

HOST = socket.gethostname()


@dataclass
class Cluster:
    apis: list[httpx.AsyncClient]
    workers: dict[str, WorkerProcess]
    body: dict[str, Any]
    docker_url: str

    async def container_ids(self, workload_id: str) -> list[str]:
        async with aiodocker.Docker(url=self.docker_url) as docker:
            found = await docker.containers.list(
                all=True, filters={"label": [f"{LABEL_WORKLOAD}={workload_id}"]}
            )
        return sorted(container.id for container in found)

    async def create(self, name: str, via: int) -> str:
        response = await self.apis[via].post(WORKLOADS, json={**self.body, "name": name})
        assert response.status_code == 201, response.text
        workload_id: str = response.json()["id"]
        return workload_id

    async def get(self, workload_id: str, via: int = 0) -> dict[str, Any]:
        found: dict[str, Any] = (await self.apis[via].get(f"{WORKLOADS}{workload_id}/")).json()
        return found

    async def wait_running(self, workload_id: str, via: int = 0) -> None:
        await eventually(
            lambda: self.get(workload_id, via),
            lambda w: w["status"] == "running",
            120,
            f"{workload_id} to run",
        )

    async def supervisors(self, workload_id: str) -> list[str]:
        """Which worker started each supervision of the workload, oldest first."""
        response = await self.apis[1].get(
            f"{WORKLOADS}{workload_id}/events/", params={"limit": 100}
        )
        events = response.json()["data"]
        started = [e for e in events if e["type"] == "supervision_started"]
        return [self.name_of(e["details"]["worker"]) for e in started]

    def name_of(self, identity: str) -> str:
        for name, process in self.workers.items():
            assert process.process is not None
            if identity.startswith(f"{HOST}-{process.process.pid}-"):
                return name
        return identity


@pytest.fixture
async def cluster(
    tmp_path: Path, postgres_url: str, docker_url: str, test_image: str, task_queue: str
) -> AsyncIterator[Cluster]:
    database_url = await catalogs.create_database(postgres_url)
    server = DevServer(tmp_path / "temporal.db", tmp_path / "temporal.log")
    settings = stack_settings(
        tmp_path, server.address, docker_url, task_queue, database_url=database_url
    )
    processes: list[ApiProcess | WorkerProcess] = []
    runtime = build_runtime(settings)
    assert runtime is not None
    workload_ids: list[str] = []
    try:
        server.start()
        await connect(server)
        # A takes three at most, so the three created after B starts go to B.
        workers = {
            "A": WorkerProcess(
                settings.model_copy(update={"supervision_capacity": 3}), tmp_path / "worker-a.log"
            ),
            "B": WorkerProcess(
                settings.model_copy(update={"supervision_capacity": 10}), tmp_path / "worker-b.log"
            ),
        }
        apis = [ApiProcess(settings, tmp_path / f"api-{index}.log") for index in range(2)]
        processes.extend([*apis, *workers.values()])
        for api in apis:
            api.start()
        workers["A"].start()
        clients = [
            httpx.AsyncClient(
                base_url=api.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
            )
            for api in apis
        ]
        for client in clients:
            await eventually(partial(_health, client), lambda status: status == 200, 60, "API")
        container = {"imageUri": test_image, "port": 8080, "readinessProbe": READY}
        body = {"artifact": {"spec": {"containerGroups": [{"containers": [container]}]}}}
        try:
            yield Cluster(clients, workers, body, docker_url)
        finally:
            listed = (await clients[0].get(WORKLOADS, params={"limit": 100})).json()
            workload_ids = [w["id"] for w in listed["data"]]
            for client in clients:
                await client.aclose()
    finally:
        for process in processes:
            process.stop()
        for workload_id in workload_ids:  # only now: no worker is left to recreate them
            await runtime.remove(workload_id)
        await runtime.close()
        server.stop()
        await catalogs.drop_database(postgres_url, database_url)


@pytest.mark.timeout(600)
async def test_a_killed_worker_hands_its_workloads_to_the_other(cluster: Cluster) -> None:
    on_a = [await cluster.create(f"a{index}", via=index % 2) for index in range(3)]
    for workload_id in on_a:
        await cluster.wait_running(workload_id, via=1)
    cluster.workers["B"].start()
    on_b = [await cluster.create(f"b{index}", via=index % 2) for index in range(3)]
    for workload_id in on_b:
        await cluster.wait_running(workload_id)
    for workload_id in on_a:
        assert set(await cluster.supervisors(workload_id)) == {"A"}
    for workload_id in on_b:
        assert (await cluster.supervisors(workload_id))[-1] == "B"
    before = {wid: await cluster.container_ids(wid) for wid in on_a + on_b}
    assert all(len(ids) == 1 for ids in before.values()), before

    cluster.workers["A"].kill()
    killed_at = time.monotonic()
    taken: dict[str, float] = {}
    while len(taken) < len(on_a) and time.monotonic() - killed_at < 120:
        for workload_id in on_a:
            if workload_id not in taken and (await cluster.supervisors(workload_id))[-1] == "B":
                taken[workload_id] = time.monotonic() - killed_at
        await asyncio.sleep(0.5)
    limit = HEARTBEAT_TIMEOUT.total_seconds() + 20  # "a few seconds", on a busy machine
    assert sorted(taken) == sorted(on_a) and max(taken.values()) < limit, taken

    # Adopted, not recreated; nothing duplicated; every workload still serves.
    for workload_id in on_a + on_b:
        assert await cluster.container_ids(workload_id) == before[workload_id]
        assert (await cluster.get(workload_id))["status"] == "running"
    # Stopping one the survivor took over: released there, removed, not recreated.
    stopped = on_a[0]
    assert (await cluster.apis[0].post(f"{WORKLOADS}{stopped}/stop/")).status_code == 202
    await eventually(
        lambda: cluster.get(stopped), lambda w: w["status"] == "stopped", 60, "the stop"
    )
    await asyncio.sleep(3)  # a supervisor still running would recreate it by now
    assert await cluster.container_ids(stopped) == []
    # Deleting the rest leaves no container behind.
    for workload_id in on_a[1:] + on_b:
        assert (await cluster.apis[1].post(f"{WORKLOADS}{workload_id}/stop/")).status_code == 202
    for workload_id in on_a[1:] + on_b:
        await eventually(
            partial(cluster.get, workload_id), lambda w: w["status"] == "stopped", 90, "stop"
        )
        assert (await cluster.apis[0].delete(f"{WORKLOADS}{workload_id}/")).status_code == 204
        assert await cluster.container_ids(workload_id) == []


async def _health(client: httpx.AsyncClient) -> int:
    try:
        return (await client.get("/healthz")).status_code
    except httpx.HTTPError:
        return 0
