"""Autoscaling on real containers: the gateway's calls in flight drive the replica count up
and back down, a workload with minReplicaCount 0 goes to zero when idle and the next calls
(one, ten at once, or through a deployment) start a replica and are answered."""

from __future__ import annotations

import ast
import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.e2e.conftest import WORKLOADS, Stack, eventually, open_stack
from tests.e2e.test_deployments import DEPLOYMENTS, token_for
from tests.e2e.test_workload_lifecycle import READY
from workflows.workload_contract import workflow_id

# Short windows so that a test takes seconds, not minutes; the rules are those of production.
FAST = {
    "autoscaler_tick_seconds": 0.5,
    "autoscaler_stable_window_seconds": 6,
    "autoscaler_panic_window_percent": 20,
    "autoscaler_idle_seconds": 4,
}


@pytest.fixture
async def fast_stack(
    tmp_path: Path,
    temporal_env: WorkflowEnvironment,
    docker_url: str,
    test_image: str,
    task_queue: str,
) -> AsyncIterator[Stack]:
    async with open_stack(
        tmp_path, temporal_env.client, docker_url, test_image, task_queue, **FAST
    ) as stack:
        yield stack


def autoscaled(stack: Stack, name: str, scaling: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "artifact": {
            "spec": {"containerGroups": [{"containers": [stack.container(readinessProbe=READY)]}]}
        },
        "runtime": {"autoscaling": scaling},  # the flat form
    }


async def create(stack: Stack, body: dict[str, Any]) -> str:
    response = await stack.api.post(WORKLOADS, json=body)
    assert response.status_code == 201, response.text
    workload_id: str = response.json()["id"]
    await stack.wait_status(workload_id, "running")
    return workload_id


async def desired(stack: Stack, workload_id: str) -> int:
    count: int = (await stack.get(workload_id))["runtime"]["containerGroups"][0]["replicaCount"]
    return count


async def wait_desired(stack: Stack, workload_id: str, check: Any, within: float = 90) -> None:
    await eventually(
        lambda: desired(stack, workload_id), check, within, f"{workload_id}'s replica count"
    )


async def ready_count(stack: Stack, workload_id: str) -> int:
    return sum(1 for replica in await stack.replicas(workload_id) if replica["ready"])


async def autoscaler_events(stack: Stack, workload_id: str) -> list[dict[str, Any]]:
    events = await stack.events(workload_id)
    return [e for e in events if e["type"] == "scaled" and e["actor"] == "autoscaler"]


async def explain(stack: Stack, workload_id: str, answer: httpx.Response) -> str:
    """What a failed call's assertion shows: the answer, the replicas, the events."""
    events = [(e["type"], e["message"]) for e in await stack.events(workload_id)]
    return f"{answer.text}\nreplicas: {await stack.replicas(workload_id)}\nevents: {events}"


async def history_length(stack: Stack, workload_id: str) -> int:
    handle = stack.temporal.get_workflow_handle(workflow_id(workload_id))
    history = await handle.fetch_history()
    return len(history.events)


@contextlib.asynccontextmanager
async def load(stack: Stack, path: str, concurrency: int) -> AsyncIterator[list[int]]:
    """`concurrency` callers, each calling `path` through the gateway again and again."""
    statuses: list[int] = []
    failures: list[str] = []
    stop = asyncio.Event()

    async def caller() -> None:
        while not stop.is_set():
            response = await stack.invoke.get(path)
            statuses.append(response.status_code)
            if response.status_code != 200:
                failures.append(response.text)

    tasks = [asyncio.create_task(caller()) for _ in range(concurrency)]
    try:
        yield statuses
        await asyncio.sleep(0)
        assert not failures, failures[:3]
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_a_load_ramp_scales_up_to_three_and_back_to_one(fast_stack: Stack) -> None:
    stack = fast_stack
    workload_id = await create(
        stack,
        autoscaled(
            stack,
            "ramp",
            # The older shape: bounds on the policy.
            {
                "enabled": True,
                "policies": [
                    {
                        "scalingMetric": "httpRequestsConcurrency",
                        "target": 1,
                        "minCount": 1,
                        "maxCount": 3,
                        "priority": 1,
                    }
                ],
            },
        ),
    )
    assert await desired(stack, workload_id) == 1
    # Each call streams for about 2 s: four callers keep about four calls in flight.
    path = f"/api/v2/endpoints/workloads/{workload_id}/cgi-bin/stream?n=10"
    async with load(stack, path, concurrency=4) as statuses:
        await wait_desired(stack, workload_id, lambda n: n >= 3)
        await eventually(
            lambda: ready_count(stack, workload_id), lambda n: n >= 3, 90, "3 ready replicas"
        )
    assert statuses and all(status == 200 for status in statuses), statuses
    assert await desired(stack, workload_id) == 3  # the policy's maxCount holds
    scaling = (await stack.api.get(f"{WORKLOADS}{workload_id}/scaling/")).json()["groups"][0]
    assert scaling["desiredReplicas"] == 3 and scaling["readyReplicas"] >= 3
    assert scaling["lastDecision"]["actor"] == "autoscaler"
    assert "calls in flight" in scaling["lastDecision"]["reason"]

    # Load gone: back to the minimum, in steps no larger than the scale-down rate.
    await wait_desired(stack, workload_id, lambda n: n == 1)
    await eventually(
        lambda: stack.replicas(workload_id), lambda rs: len(rs) == 1, 60, "one replica left"
    )
    events = await autoscaler_events(stack, workload_id)
    counts = [ast.literal_eval(e["details"]["replicas"])["default"] for e in events]
    assert events, "the autoscaler recorded its changes"
    assert all("calls in flight" in e["details"]["reason"] for e in events)
    assert max(counts) == 3 and counts[-1] == 1

    # Steady, with no load: the autoscaler decides every tick but sends nothing, so the
    # workflow's history does not grow.
    before = await history_length(stack, workload_id)
    await asyncio.sleep(5)  # ten ticks
    assert await history_length(stack, workload_id) == before
    assert await autoscaler_events(stack, workload_id) == events


async def test_scale_to_zero_and_back_on_the_next_calls(fast_stack: Stack) -> None:
    stack = fast_stack
    workload_id = await create(
        stack,
        autoscaled(
            stack,
            "idle",
            {
                "enabled": True,
                "minReplicaCount": 0,
                "maxReplicaCount": 2,
                "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 10}],
            },
        ),
    )
    path = f"/api/v2/endpoints/workloads/{workload_id}/cgi-bin/echo"
    for round_ in range(2):
        # Idle: zero replicas, and the workload still running.
        await wait_desired(stack, workload_id, lambda n: n == 0)
        await eventually(lambda: stack.replicas(workload_id), lambda rs: rs == [], 60, "no replica")
        workload = await stack.get(workload_id)
        assert workload["status"] == "running"
        starts = len(await autoscaler_events(stack, workload_id))
        if round_ == 0:
            response = await stack.invoke.get(path)
            assert response.status_code == 200, await explain(stack, workload_id, response)
        else:
            answers = await asyncio.gather(*(stack.invoke.get(path) for _ in range(10)))
            assert [a.status_code for a in answers] == [200] * 10, await explain(
                stack, workload_id, answers[0]
            )
        events = await autoscaler_events(stack, workload_id)
        # One start from zero, whatever the number of calls that waited for it.
        woken = events[starts:]
        assert len(woken) == 1, woken
        assert woken[0]["details"]["reason"].startswith("calls waiting at zero replicas")
        assert await desired(stack, workload_id) >= 1


async def health(stack: Stack, deployment_id: str) -> dict[str, Any]:
    response = await stack.api.get(f"{DEPLOYMENTS}{deployment_id}/health/")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_a_deployment_in_front_of_a_workload_at_zero(fast_stack: Stack) -> None:
    stack = fast_stack
    artifact = await stack.registered("zero", readinessProbe=READY)
    body = {
        "name": "zero",
        "artifactId": artifact["id"],
        "runtime": {
            "containerGroups": [
                {
                    "autoscaling": {
                        "enabled": True,
                        "minReplicaCount": 0,
                        "maxReplicaCount": 2,
                        "policies": [{"target": 10}],
                    }
                }
            ]
        },
    }
    workload_id = await create(stack, body)
    response = await stack.api.post(
        DEPLOYMENTS,
        json={"name": "prod", "workloadId": workload_id, "health": {"intervalSeconds": 1}},
    )
    assert response.status_code == 201, response.text
    deployment_id = response.json()["id"]
    token = await token_for(stack, deployment_id)
    await wait_desired(stack, workload_id, lambda n: n == 0)
    await eventually(lambda: stack.replicas(workload_id), lambda rs: rs == [], 60, "no replica")
    # Its health does not count zero replicas as a failure: at zero there is nothing to
    # check, and no failed check is recorded.
    checks_at_zero = await health(stack, deployment_id)
    await asyncio.sleep(3)  # three health intervals
    later = await health(stack, deployment_id)
    assert later["consecutiveFailures"] == 0
    assert later["availability"]["checks"] == checks_at_zero["availability"]["checks"]
    assert all(check["ok"] for check in later["recent"])
    assert (await stack.get(workload_id))["status"] == "running"
    url = f"{stack.gateway_url}/api/v2/endpoints/deployments/{deployment_id}/cgi-bin/echo"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=90) as c:
        answers = await asyncio.gather(*(c.get(url) for _ in range(10)))
    assert [a.status_code for a in answers] == [200] * 10


async def test_cpu_utilization_from_the_engine_scales_up(fast_stack: Stack) -> None:
    stack = fast_stack
    # A busy loop beside the server: each replica uses all of its CPU limit.
    busy = ["sh", "-c", "(while :; do :; done) & exec /usr/local/bin/wapi-demo serve"]
    body = autoscaled(
        stack,
        "busy",
        {
            "enabled": True,
            "minReplicaCount": 1,
            "maxReplicaCount": 2,
            "policies": [{"scalingMetric": "cpuAverageUtilization", "target": 40}],
        },
    )
    body["artifact"]["spec"]["containerGroups"][0]["containers"][0]["command"] = busy
    workload_id = await create(stack, body)
    await wait_desired(stack, workload_id, lambda n: n == 2)
    [event] = await autoscaler_events(stack, workload_id)
    assert "% CPU" in event["details"]["reason"], event
