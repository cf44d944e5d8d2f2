"""Fault tests: processes die, servers restart, and no workload is lost, duplicated or orphaned."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api.app import create_app
from catalog import database
from models.workloads import WorkloadCreate
from runtimes.factory import build_runtime
from services import workloads
from services.bundles import BundleCatalog
from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import WORKLOADS, Stack, eventually, stack_settings
from tests.e2e.test_workload_lifecycle import READY, containers_of
from tests.factories import ADMIN
from tests.support.gateway import gateway_in_thread
from tests.support.live_server import serve
from tests.support.processes import ApiProcess, DevServer, WorkerProcess


@dataclass
class FaultStack:
    stack: Stack
    server: DevServer
    tmp_path: Path
    workers: list[WorkerProcess]

    def worker(self) -> WorkerProcess:
        process = WorkerProcess(
            self.stack.settings, self.tmp_path / f"worker-{len(self.workers)}.log"
        )
        process.start()
        self.workers.append(process)
        return process


async def connect(address: str) -> Client:
    async def attempt() -> Client | None:
        try:
            return await Client.connect(address, data_converter=pydantic_data_converter)
        except RuntimeError:
            return None

    client: Client = await eventually(attempt, lambda c: c is not None, 30, "Temporal to answer")
    return client


@pytest.fixture
async def faults(
    tmp_path: Path, docker_url: str, test_image: str, task_queue: str
) -> AsyncIterator[FaultStack]:
    server = DevServer(tmp_path / "temporal.db", tmp_path / "temporal.log")
    settings = stack_settings(tmp_path, server.address, docker_url, task_queue)
    runtime = build_runtime(settings)
    assert runtime is not None
    workers: list[WorkerProcess] = []
    leftovers: list[str] = []
    try:
        server.start()
        temporal = await connect(server.address)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with serve(create_app(settings)) as url, gateway_in_thread(settings) as gateway:
            async with (
                httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as api,
                httpx.AsyncClient(base_url=gateway, headers=headers, timeout=30) as invoke,
            ):
                stack = Stack(url, api, gateway, invoke, settings, test_image, temporal)
                try:
                    yield FaultStack(stack, server, tmp_path, workers)
                finally:
                    leftovers = [w["id"] for w in (await api.get(WORKLOADS)).json()["data"]]
    finally:
        for worker in workers:
            worker.stop()
        # Only now that no worker runs: a live supervisor would recreate what is removed.
        for workload_id in leftovers:
            await runtime.remove(workload_id)
        server.stop()
        await runtime.close()


async def test_worker_killed_while_initializing(faults: FaultStack) -> None:
    stack = faults.stack
    first = faults.worker()
    wid = (await stack.create(command=["slow-start", "6"], readinessProbe=READY))["id"]
    await stack.wait_status(wid, "initializing")
    await eventually(lambda: containers_of(stack, wid), bool, 30, "the container to exist")
    first.kill()
    # With no worker at all, reads still answer from the catalog.
    assert (await stack.get(wid))["status"] == "initializing"
    listed = (await stack.api.get(WORKLOADS)).json()
    assert [w["id"] for w in listed["data"]] == [wid]
    assert (await stack.api.get(f"{WORKLOADS}{wid}/events/")).status_code == 200
    faults.worker()
    running = await stack.wait_status(wid, "running", within=90)
    assert running["generation"] == 1
    containers = await containers_of(stack, wid)
    assert len(containers) == 1, containers  # adopted, not duplicated
    assert len(await stack.replicas(wid)) == 1
    assert (await stack.invoke.get(f"/api/v2/endpoints/workloads/{wid}/healthz")).status_code == 200


async def test_temporal_restarted_on_its_database(faults: FaultStack) -> None:
    stack = faults.stack
    faults.worker()
    ids = [(await stack.create(name=f"w{i}", readinessProbe=READY))["id"] for i in range(2)]
    for wid in ids:
        await stack.wait_status(wid, "running")
    before = {wid: [c["Id"] for c in await containers_of(stack, wid)] for wid in ids}

    faults.server.stop()
    await asyncio.sleep(1)
    # Reads keep working from the catalog while Temporal is down.
    assert (await stack.get(ids[0]))["status"] == "running"
    faults.server.start()
    await connect(faults.server.address)

    # Every workload carries on: same containers, still serving, and still managed.
    for wid in ids:
        assert [c["Id"] for c in await containers_of(stack, wid)] == before[wid]
        assert (
            await stack.invoke.get(f"/api/v2/endpoints/workloads/{wid}/healthz")
        ).status_code == 200
    stopped = await stack.api.post(f"{WORKLOADS}{ids[0]}/stop/")
    assert stopped.status_code == 202, stopped.text
    await stack.wait_status(ids[0], "stopped")
    assert await containers_of(stack, ids[0]) == []
    newcomer = (await stack.create(name="after-restart"))["id"]
    await stack.wait_status(newcomer, "running")
    assert (await stack.get(ids[1]))["status"] == "running"


async def test_a_row_left_without_its_workflow_is_picked_up(faults: FaultStack) -> None:
    """The API died after writing a workload and before starting its workflow: a running
    worker notices within its restore interval and the workload comes up."""
    stack = faults.stack
    faults.worker()
    await asyncio.sleep(1)  # the worker is up and past its start-up restore
    engine = database.create_engine(stack.settings.catalog_url)
    try:
        async with database.create_sessionmaker(engine)() as session, session.begin():
            row = await workloads.create_workload(
                session,
                WorkloadCreate.model_validate(
                    {
                        "name": "orphan",
                        "artifact": {
                            "spec": {
                                "containerGroups": [
                                    {"containers": [stack.container(readinessProbe=READY)]}
                                ]
                            }
                        },
                    }
                ),
                ADMIN,
                BundleCatalog.load(),
            )
    finally:
        await engine.dispose()
    running = await stack.wait_status(row.id, "running", within=60)
    assert running["generation"] == 1
    assert len(await containers_of(stack, row.id)) == 1


async def test_api_killed_under_load(faults: FaultStack) -> None:
    """SIGKILL the API while clients create workloads: every workload the catalog holds comes
    up exactly once, and every one a client was told about exists."""
    stack = faults.stack
    faults.worker()
    api = ApiProcess(stack.settings, faults.tmp_path / "api.log")
    api.start()
    try:
        await _healthy(api.url)
        acknowledged: list[str] = []
        failed = 0
        body = {
            "name": "load",
            "artifact": {"spec": {"containerGroups": [{"containers": [stack.container()]}]}},
        }

        async def create_many() -> None:
            nonlocal failed
            async with httpx.AsyncClient(
                headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
            ) as client:
                for _ in range(8):
                    try:
                        response = await client.post(f"{api.url}{WORKLOADS}", json=body)
                        if response.status_code == 201:
                            acknowledged.append(response.json()["id"])
                        else:
                            failed += 1
                    except httpx.HTTPError:
                        failed += 1
                    await asyncio.sleep(0.15)

        load = asyncio.create_task(create_many())
        await asyncio.sleep(0.5)
        api.kill()
        await asyncio.sleep(0.3)
        api.start()
        await _healthy(api.url)
        await load
    finally:
        api.kill()

    assert acknowledged and failed, (len(acknowledged), failed)  # the kill landed mid-load
    catalog = {
        w["id"] for w in (await stack.api.get(WORKLOADS, params={"limit": 100})).json()["data"]
    }
    assert set(acknowledged) <= catalog
    for workload_id in catalog:
        await stack.wait_status(workload_id, "running", within=90)
        assert len(await containers_of(stack, workload_id)) == 1


async def _healthy(url: str) -> None:
    async def check() -> int:
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(f"{url}/healthz")).status_code
        except httpx.HTTPError:
            return 0

    await eventually(check, lambda status: status == 200, 30, f"{url} to answer")
