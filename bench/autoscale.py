"""Autoscaling: a call that arrives at zero replicas, and the reaction to a step in load.

1. Cold start. A workload with `minReplicaCount: 0` (the demo image's `serve`, readiness probe
   `GET /ready` every second) is left idle until the autoscaler has taken it to zero; then one
   `GET /cgi-bin/echo` goes through the gateway and the time to the first byte of its answer
   is measured: the gateway holds the call, the autoscaler sees it and sends the workflow a
   scale Update, the supervisor starts a container, its readiness probe passes, the gateway
   finds the ready replica and forwards. Against it: the same container started directly
   through the Docker API and polled on `/ready` until 200 (`time_to_running.direct_once`).
   Runs alternate; the ratio of medians is printed.
2. Load step. A workload with one replica (target 1 call in flight per replica, at most 4)
   gets 4 callers at once, each streaming `/cgi-bin/stream?n=10` (about 2 s a call) again and
   again; printed: the time from the step to the autoscaler's first decision, and to 4 ready
   replicas.

The autoscaler's windows are shortened (stable 6 s, panic 20% of it, tick 0.5 s, idle 3 s) so
a run takes a minute or two; the rules are production's. Gateway in a thread, API (with the
autoscaler) in-thread, worker in-process, as in the end-to-end tests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

import aiodocker
import httpx
from _stack import READY_PROBE, Stack, running_stack, summary
from time_to_running import direct_once

from tests.support.gateway import gateway_in_thread
from tests.support.ports import free_port

WORKLOADS = "/api/v2/console/workloads/"
FAST: dict[str, Any] = {
    "autoscaler_tick_seconds": 0.5,
    "autoscaler_stable_window_seconds": 6,
    "autoscaler_panic_window_percent": 20,
    "autoscaler_idle_seconds": 3,
}


def body(stack: Stack, name: str, scaling: dict[str, Any]) -> dict[str, Any]:
    container = {
        "imageUri": stack.image,
        "port": 8080,
        "command": ["serve"],
        "readinessProbe": READY_PROBE,
    }
    return {
        "name": name,
        "artifact": {"spec": {"containerGroups": [{"containers": [container]}]}},
        "runtime": {"autoscaling": scaling},
    }


async def create(stack: Stack, name: str, scaling: dict[str, Any]) -> str:
    response = await stack.api.post(WORKLOADS, json=body(stack, name, scaling))
    if response.status_code != 201:
        raise RuntimeError(f"create failed: {response.status_code} {response.text}")
    workload_id: str = response.json()["id"]
    stack.created.add(workload_id)
    await stack.wait_running(workload_id, poll=0.1)
    return workload_id


async def scaling(stack: Stack, workload_id: str) -> dict[str, Any]:
    response = await stack.api.get(f"{WORKLOADS}{workload_id}/scaling/")
    response.raise_for_status()
    group: dict[str, Any] = response.json()["groups"][0]
    return group


async def wait_for(stack: Stack, workload_id: str, done: Any, within: float = 120) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < within:
        if done(await scaling(stack, workload_id)):
            return time.perf_counter() - started
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{workload_id}: not done within {within} s")


async def cold_call(stack: Stack, invoke: httpx.AsyncClient, workload_id: str) -> float:
    """Seconds to the first byte of a call made at zero replicas."""
    await wait_for(stack, workload_id, lambda g: g["desiredReplicas"] == 0)
    await wait_for(stack, workload_id, lambda g: g["reportedReplicas"] == 0)
    await asyncio.sleep(1)  # the gateways' tables have followed
    started = time.perf_counter()
    path = f"/api/v2/endpoints/workloads/{workload_id}/cgi-bin/echo"
    async with invoke.stream("GET", path) as response:
        async for _ in response.aiter_raw():
            break
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"the call at zero answered {response.status_code}")
    return elapsed


async def load_step(stack: Stack, invoke: httpx.AsyncClient) -> tuple[float, float, int]:
    workload_id = await create(
        stack,
        f"step-{uuid.uuid4().hex[:6]}",
        {
            "enabled": True,
            "minReplicaCount": 1,
            "maxReplicaCount": 4,
            "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 1}],
        },
    )
    await asyncio.sleep(3)  # a few samples of no load
    stop = asyncio.Event()
    failures = 0

    async def caller() -> None:
        nonlocal failures
        while not stop.is_set():
            path = f"/api/v2/endpoints/workloads/{workload_id}/cgi-bin/stream?n=10"
            response = await invoke.get(path)
            failures += response.status_code != 200

    callers = [asyncio.create_task(caller()) for _ in range(4)]
    try:
        decided = await wait_for(stack, workload_id, lambda g: g["desiredReplicas"] > 1)
        ready = await wait_for(stack, workload_id, lambda g: g["readyReplicas"] >= 4)
    finally:
        stop.set()
        await asyncio.gather(*callers)
    return decided, decided + ready, failures


async def main(runs: int) -> None:
    async with running_stack(gateway_port=free_port(), **FAST) as stack:
        with gateway_in_thread(stack.settings) as gateway_url:
            async with (
                httpx.AsyncClient(
                    base_url=gateway_url,
                    headers=stack.api.headers,
                    timeout=120,
                    trust_env=False,
                ) as invoke,
                aiodocker.Docker(url=stack.docker_url) as docker,
                httpx.AsyncClient(trust_env=False, timeout=2) as http,
            ):
                zero = await create(
                    stack,
                    "cold",
                    {
                        "enabled": True,
                        "minReplicaCount": 0,
                        "maxReplicaCount": 2,
                        "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 10}],
                    },
                )
                await cold_call(stack, invoke, zero)  # warm-up
                await direct_once(docker, http, stack.image, 0.05)
                cold: list[float] = []
                direct: list[float] = []
                for index in range(runs):
                    if index % 2 == 0:
                        cold.append(await cold_call(stack, invoke, zero))
                        direct.append(await direct_once(docker, http, stack.image, 0.05))
                    else:
                        direct.append(await direct_once(docker, http, stack.image, 0.05))
                        cold.append(await cold_call(stack, invoke, zero))
                decided, ready, failures = await load_step(stack, invoke)

    print("autoscaling: a call at zero replicas, and the reaction to a load step")
    print("  autoscaler windows: stable 6 s, panic 1.2 s, tick 0.5 s, idle before zero 3 s")
    print(f"  cold start, {runs} runs after a warm-up each (readiness probe every 1 s):")
    print(f"    call at zero, time to first byte through the gateway  {summary(cold)}")
    print(f"    same container started directly, until /ready answers {summary(direct)}")
    ratio = statistics.median(cold) / statistics.median(direct)
    print(f"    ratio at-zero/direct (medians): {ratio:.2f}x")
    print("  load step 0 -> 4 calls in flight (target 1 per replica, 1 replica at the step):")
    print(f"    first scale-up decision after {decided:.2f} s")
    print(f"    4 replicas ready after        {ready:.2f} s")
    print(f"    calls that did not answer 200 during the step: {failures}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="measured cold starts (default 3)")
    args = parser.parse_args()
    asyncio.run(main(args.runs))
