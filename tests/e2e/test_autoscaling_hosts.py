"""Autoscaling across processes that share nothing but PostgreSQL and Temporal, as the
Kubernetes manifests run them: two API processes and two gateway processes, each with a state
directory of its own. The calls in flight through both gateways add up in the catalog and
scale the workload; only one API process decides; idle, the workload goes to zero, and a call
held by either gateway wakes the decider in the other process."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtimes.factory import build_runtime
from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import WORKLOADS, eventually, stack_settings
from tests.e2e.test_faults import connect
from tests.e2e.test_workload_lifecycle import READY
from tests.support import catalogs
from tests.support.gateway import GatewayProcess
from tests.support.ports import free_port
from tests.support.processes import ApiProcess, DevServer, WorkerProcess

FAST = {
    "autoscaler_tick_seconds": 0.5,
    "autoscaler_stable_window_seconds": 6,
    "autoscaler_panic_window_percent": 20,
    "autoscaler_idle_seconds": 4,
}
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class Hosts:
    apis: list[ApiProcess]
    gateways: list[GatewayProcess]
    api: httpx.AsyncClient

    async def desired(self, workload_id: str) -> int:
        workload = (await self.api.get(f"{WORKLOADS}{workload_id}/")).json()
        count: int = workload["runtime"]["containerGroups"][0]["replicaCount"]
        return count

    async def replicas(self, workload_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (
            await self.api.get(f"{WORKLOADS}{workload_id}/replicas/")
        ).json()
        return found


@pytest.fixture
async def hosts(
    tmp_path: Path, postgres_url: str, docker_url: str, test_image: str, task_queue: str
) -> AsyncIterator[Hosts]:
    database_url = await catalogs.create_database(postgres_url)
    server = DevServer(tmp_path / "temporal.db", tmp_path / "temporal.log")
    base = stack_settings(
        tmp_path, server.address, docker_url, task_queue, database_url=database_url, **FAST
    )

    def host(name: str) -> Any:  # a machine of its own: its own state directory
        return base.model_copy(update={"state_dir": tmp_path / name})

    runtime = build_runtime(base)
    assert runtime is not None
    apis = [ApiProcess(host(f"api-{i}"), tmp_path / f"api-{i}.log") for i in range(2)]
    gateways = [
        GatewayProcess(
            host(f"gateway-{i}").model_copy(update={"gateway_port": free_port()}),
            tmp_path / f"gateway-{i}.log",
        )
        for i in range(2)
    ]
    worker = WorkerProcess(host("worker"), tmp_path / "worker.log")
    processes = [*apis, *gateways, worker]
    workload_ids: list[str] = []
    try:
        server.start()
        await connect(server)
        apis[0].start()  # first, so that it migrates the catalog alone
        async with httpx.AsyncClient(base_url=apis[0].url, headers=AUTH, timeout=30) as client:
            await eventually(partial(_health, client), lambda s: s == 200, 60, "the API")
            for process in [apis[1], *gateways, worker]:
                process.start()
            async with httpx.AsyncClient(base_url=apis[1].url) as second:
                await eventually(partial(_health, second), lambda s: s == 200, 60, "the 2nd API")
            for gateway in gateways:
                await asyncio.to_thread(gateway.wait_ready, 60)
            try:
                yield Hosts(apis, gateways, client)
            finally:
                listed = (await client.get(WORKLOADS, params={"limit": 100})).json()
                workload_ids = [w["id"] for w in listed["data"]]
    finally:
        for process in processes:
            process.stop()
        for workload_id in workload_ids:
            await runtime.remove(workload_id)
        await runtime.close()
        server.stop()
        await catalogs.drop_database(postgres_url, database_url)


async def _health(client: httpx.AsyncClient) -> int:
    try:
        return (await client.get("/healthz")).status_code
    except httpx.HTTPError:
        return 0


@contextlib.asynccontextmanager
async def callers(urls: list[str]) -> AsyncIterator[list[int]]:
    """One caller per url, each calling it again and again until the context ends."""
    statuses: list[int] = []
    stop = asyncio.Event()

    async def call(client: httpx.AsyncClient, url: str) -> None:
        while not stop.is_set():
            statuses.append((await client.get(url)).status_code)

    async with httpx.AsyncClient(headers=AUTH, timeout=60) as client:
        tasks = [asyncio.create_task(call(client, url)) for url in urls]
        try:
            yield statuses
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def autoscaler_figures(api: ApiProcess) -> tuple[float, float]:
    """(deciding, changes sent) from the API process's /metrics."""
    async with httpx.AsyncClient(base_url=api.url) as client:
        text = (await client.get("/metrics")).text
    found = re.search(r"^wapi_autoscaler_deciding (\S+)$", text, re.M)
    assert found is not None, text
    sent = re.findall(r"^wapi_autoscaler_decisions_total\{.*\} (\S+)$", text, re.M)
    return float(found[1]), sum(float(value) for value in sent)


@pytest.mark.timeout(600)
async def test_load_through_two_gateways_scales_and_one_api_decides(
    hosts: Hosts, test_image: str
) -> None:
    body = {
        "name": "spread",
        "artifact": {
            "spec": {
                "containerGroups": [
                    {
                        "containers": [
                            {"imageUri": test_image, "port": 8080, "readinessProbe": READY}
                        ]
                    }
                ]
            }
        },
        "runtime": {
            "autoscaling": {
                "enabled": True,
                "minReplicaCount": 0,
                "maxReplicaCount": 3,
                "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 1}],
            }
        },
    }
    response = await hosts.api.post(WORKLOADS, json=body)
    assert response.status_code == 201, response.text
    workload_id = response.json()["id"]
    await eventually(
        lambda: hosts.api.get(f"{WORKLOADS}{workload_id}/"),
        lambda r: r.json()["status"] == "running", 120, "the workload to run",
    )  # fmt: skip
    path = f"/api/v2/endpoints/workloads/{workload_id}/cgi-bin/stream?n=10"
    # Two callers on each gateway: each gateway alone sees about 2 calls in flight (2
    # replicas at target 1); only their sum, read from the catalog, asks for the maximum, 3.
    urls = [f"{gateway.url}{path}" for gateway in hosts.gateways for _ in range(2)]
    async with callers(urls) as statuses:
        await eventually(partial(hosts.desired, workload_id), lambda n: n == 3, 120, "3 replicas")
    assert statuses and set(statuses) == {200}, statuses

    # Idle: to zero; then one call through the second gateway is held there, the deciding
    # API process sees it in the catalog and starts a replica, and the call is answered.
    await eventually(partial(hosts.desired, workload_id), lambda n: n == 0, 120, "zero")
    await eventually(partial(hosts.replicas, workload_id), lambda rs: rs == [], 60, "no replica")
    echo = f"{hosts.gateways[1].url}/api/v2/endpoints/workloads/{workload_id}/cgi-bin/echo"
    async with httpx.AsyncClient(headers=AUTH, timeout=90) as client:
        answer = await client.get(echo)
    assert answer.status_code == 200, answer.text
    listed = await hosts.api.get(f"{WORKLOADS}{workload_id}/events/", params={"limit": 100})
    reasons = [
        e["details"]["reason"]
        for e in listed.json()["data"]
        if e["type"] == "scaled" and e["actor"] == "autoscaler"
    ]
    assert any(r.startswith("calls waiting at zero replicas") for r in reasons), reasons

    # Exactly one API process decided, and every change came from it.
    figures = [await autoscaler_figures(api) for api in hosts.apis]
    assert sorted(deciding for deciding, _ in figures) == [0, 1], figures
    decider = next(sent for deciding, sent in figures if deciding == 1)
    assert decider >= 3 and sum(sent for deciding, sent in figures if deciding == 0) == 0, figures
