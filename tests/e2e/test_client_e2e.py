"""The typed client drives real lifecycles: waits, replicas, logs, events, invoke and swaps, on
real containers (both clients)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from client import AsyncClient, Client, WaitFailedError
from models.artifacts import ArtifactCreate
from models.workloads import WorkloadCreate
from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Stack

READY = {"path": "/ready", "periodSeconds": 1}


def registered(stack: Stack, name: str, **container: Any) -> ArtifactCreate:
    spec = {"containerGroups": [{"containers": [stack.container(**container)]}]}
    return ArtifactCreate.model_validate({"name": name, "status": "registered", "spec": spec})


async def test_the_async_client_follows_a_workload_from_start_to_delete(stack: Stack) -> None:
    async with AsyncClient(stack.url, ADMIN_KEY, gateway_url=stack.gateway_url) as wapi:
        artifact = await wapi.artifacts.create(registered(stack, "svc", readinessProbe=READY))
        body = {"name": "svc", "artifactId": artifact.id, "runtime": {"containerGroups": [{}]}}
        created = await wapi.workloads.create(WorkloadCreate.model_validate(body))
        seen: list[str] = []
        running = await wapi.workloads.wait_until_ready(
            created.id, timeout=60, interval=0.3, on_poll=lambda w: seen.append(w.status)
        )
        assert running.status == "running" and seen[-1] == "running"
        assert [r.ready for r in await wapi.workloads.replicas(created.id)] == [True]

        answer = await wapi.workloads.invoke(created.id, "cgi-bin/echo", params={"a": "1"})
        assert answer.status_code == 200 and answer.json()["query"] == "a=1"
        assert "serving on port 8080" in await wapi.workloads.logs(created.id, tail=5)
        lines = wapi.workloads.follow_logs(created.id, tail=1)
        assert "serving on port 8080" in await asyncio.wait_for(anext(lines), 10)
        await lines.aclose()  # type: ignore[attr-defined]

        events = wapi.workloads.watch_events(created.id, interval=0.3)
        types = [(await anext(events)).type for _ in range(2)]
        assert types[0] == "created"

        await wapi.workloads.stop(created.id)
        stopped = await wapi.workloads.wait_until(created.id, "stopped", timeout=60, interval=0.3)
        assert stopped.status == "stopped"
        await wapi.workloads.delete(created.id)
        assert [w.id async for w in wapi.workloads.list.all()] == []


async def test_waiting_for_running_fails_fast_when_the_workload_errors(stack: Stack) -> None:
    async with AsyncClient(stack.url, ADMIN_KEY, gateway_url=stack.gateway_url) as wapi:
        created = await wapi.workloads.create(
            {"name": "crashy", "artifact": {"spec": {"containerGroups": [
                {"containers": [stack.container(command=["crash"])]}
            ]}}}
        )  # fmt: skip
        started = time.monotonic()
        with pytest.raises(WaitFailedError) as failed:
            await wapi.workloads.wait_until(created.id, timeout=120, interval=0.3)
        assert "errored" in failed.value.reason and "crashing on purpose" in failed.value.reason
        assert time.monotonic() - started < 110  # it did not wait for the deadline


def swap_and_wait(url: str, deployment_id: str, workload_id: str) -> WaitFailedError | None:
    with Client(url, ADMIN_KEY) as wapi:
        swap = wapi.deployments.swap(
            deployment_id, {"workloadId": workload_id, "readyTimeoutSeconds": 4}
        )
        try:
            wapi.deployments.wait_for_swap(deployment_id, swap.id, timeout=90, interval=0.3)
        except WaitFailedError as error:
            return error
        return None


async def test_a_swap_that_rolls_back_fails_its_wait(stack: Stack) -> None:
    good = await stack.registered("good", readinessProbe=READY)
    bad = await stack.registered("bad", command=["never-ready"], readinessProbe=READY)
    live = await stack.workload_of(good["id"], "live")
    await stack.wait_status(live, "running")
    async with AsyncClient(stack.url, ADMIN_KEY, gateway_url=stack.gateway_url) as wapi:
        deployment = await wapi.deployments.create({"name": "prod", "workloadId": live})
        await wapi.deployments.wait_until(deployment.id, "running", timeout=60, interval=0.3)
        candidate = await stack.workload_of(bad["id"], "candidate")
        error = await asyncio.to_thread(swap_and_wait, stack.url, deployment.id, candidate)
        assert error is not None and "rolled_back" in error.reason
        assert (await wapi.deployments.get(deployment.id)).workload_id == live
        await wapi.deployments.delete(deployment.id)
