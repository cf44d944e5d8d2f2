"""The whole product against real containers: a live API server, a worker, Temporal, Podman."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from catalog import database
from config.settings import Settings
from runtimes.factory import build_runtime
from services.bundles import BundleCatalog
from tests.conftest import ADMIN_KEY
from tests.support.gateway import gateway_in_thread
from tests.support.live_server import serve
from tests.support.ports import free_port
from worker import WorkerGroup, build_worker

WORKLOADS = "/api/v2/console/workloads/"


@dataclass
class Stack:
    url: str
    api: httpx.AsyncClient
    gateway_url: str
    invoke: httpx.AsyncClient  # to the gateway, with the admin key
    settings: Settings
    image: str
    temporal: Client
    worker: WorkerGroup | None = None

    def container(self, command: list[str] | None = None, **fields: Any) -> dict[str, Any]:
        container: dict[str, Any] = {"imageUri": self.image, "port": 8080, **fields}
        if command is not None:
            container["command"] = command
        return container

    async def create(self, name: str = "w", replicas: int = 1, **container: Any) -> dict[str, Any]:
        body = {
            "name": name,
            "artifact": {
                "spec": {"containerGroups": [{"containers": [self.container(**container)]}]}
            },
            "runtime": {"containerGroups": [{"replicaCount": replicas}]},
        }
        response = await self.api.post(WORKLOADS, json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def registered(
        self, name: str = "svc", collection_id: str | None = None, **container: Any
    ) -> dict[str, Any]:
        """A registered artifact (in `collection_id`, or v1 of a new collection)."""
        body: dict[str, Any] = {
            "name": name,
            "status": "registered",
            "spec": {"containerGroups": [{"containers": [self.container(**container)]}]},
        }
        if collection_id:
            body["collectionId"] = collection_id
        response = await self.api.post("/api/v2/registry/artifacts/", json=body)
        assert response.status_code == 201, response.text
        artifact: dict[str, Any] = response.json()
        return artifact

    async def workload_of(self, artifact_id: str, name: str = "w", replicas: int = 1) -> str:
        body = {
            "name": name,
            "artifactId": artifact_id,
            "runtime": {"containerGroups": [{"replicaCount": replicas}]},
        }
        response = await self.api.post(WORKLOADS, json=body)
        assert response.status_code == 201, response.text
        workload_id: str = response.json()["id"]
        return workload_id

    async def get(self, workload_id: str) -> dict[str, Any]:
        response = await self.api.get(f"{WORKLOADS}{workload_id}/")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_status(
        self, workload_id: str, *statuses: str, within: float = 60
    ) -> dict[str, Any]:
        found: dict[str, Any] = await eventually(
            lambda: self.get(workload_id),
            lambda w: w["status"] in statuses,
            within,
            f"workload {workload_id} to reach {statuses}",
        )
        return found

    async def events(self, workload_id: str) -> list[dict[str, Any]]:
        response = await self.api.get(f"{WORKLOADS}{workload_id}/events/", params={"limit": 100})
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    async def replicas(self, workload_id: str) -> list[dict[str, Any]]:
        response = await self.api.get(f"{WORKLOADS}{workload_id}/replicas/")
        data: list[dict[str, Any]] = response.json()
        return data


async def eventually(
    fetch: Callable[[], Awaitable[Any]],
    done: Callable[[Any], bool],
    within: float,
    what: str,
) -> Any:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await fetch()
        if done(last):
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out after {within} s waiting for {what}; last: {last}")


def stack_settings(
    tmp_path: Path, temporal_address: str, docker_url: str, task_queue: str, **overrides: Any
) -> Settings:
    fields: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}",
        "bootstrap_admin_key": ADMIN_KEY,
        "temporal_address": temporal_address,
        "temporal_task_queue": task_queue,
        "docker_url": docker_url,
        "ready_timeout_seconds": 30,  # container creation counts; slow on a busy machine
        "restart_backoff_seconds": 0.2,
        "restart_backoff_max_seconds": 1,
        "crash_loop_limit": 3,
        "update_timeout_seconds": 20,
        "restore_interval_seconds": 2,
        "gateway_port": free_port(),
    }
    return Settings(**(fields | overrides))


@asynccontextmanager
async def open_stack(
    tmp_path: Path,
    client: Client,
    docker_url: str,
    image: str,
    task_queue: str,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """A live API and an in-process worker on `client`'s Temporal; containers removed after.
    `overrides` are Settings fields."""
    settings = stack_settings(
        tmp_path, client.service_client.config.target_host, docker_url, task_queue, **overrides
    )
    runtime = build_runtime(settings)
    assert runtime is not None
    engine = database.create_engine(settings.catalog_url)
    leftovers: list[str] = []
    try:
        with serve(create_app(settings)) as url, gateway_in_thread(settings) as gateway_url:
            sessions = database.create_sessionmaker(engine)
            worker = build_worker(client, settings, sessions, runtime, BundleCatalog.load())
            headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
            async with (
                worker,
                httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as api,
                httpx.AsyncClient(base_url=gateway_url, headers=headers, timeout=30) as invoke,
            ):
                try:
                    yield Stack(url, api, gateway_url, invoke, settings, image, client, worker)
                finally:
                    workloads = (await api.get(WORKLOADS, params={"limit": 100})).json()["data"]
                    leftovers = [workload["id"] for workload in workloads]
    finally:
        # Only now that the worker has stopped: a running supervisor would recreate them.
        for workload_id in leftovers:
            await runtime.remove(workload_id)
        await runtime.close()
        await engine.dispose()


@pytest.fixture
async def stack(
    tmp_path: Path,
    temporal_env: WorkflowEnvironment,
    docker_url: str,
    test_image: str,
    task_queue: str,
) -> AsyncIterator[Stack]:
    async with open_stack(tmp_path, temporal_env.client, docker_url, test_image, task_queue) as s:
        yield s
