"""Lifecycle requests sent together through the API, on real containers: each is honoured
(202) or refused (409), and each honoured one has exactly one effect. (The interleavings
that used to lose requests are forced deterministically in tests/test_update_races.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2e.conftest import WORKLOADS, Stack, eventually
from tests.e2e.test_deployments import DEPLOYMENTS, deploy, running_workload
from tests.e2e.test_workload_lifecycle import READY, containers_of


async def together(stack: Stack, *calls: tuple[str, dict[str, Any] | None]) -> list[int]:
    """POST each (path, body) at once; their status codes, in order."""
    responses = await asyncio.gather(*(stack.api.post(path, json=body) for path, body in calls))
    return [response.status_code for response in responses]


async def test_starts_and_stops_sent_together(stack: Stack) -> None:
    wid = (await stack.create(readinessProbe=READY))["id"]
    await stack.wait_status(wid, "running")
    start, stop = (f"{WORKLOADS}{wid}/start/", None), (f"{WORKLOADS}{wid}/stop/", None)

    assert sorted(await together(stack, stop, stop)) == [202, 409]
    await stack.wait_status(wid, "stopped")
    assert await containers_of(stack, wid) == []

    assert sorted(await together(stack, start, start)) == [202, 409]
    running = await stack.wait_status(wid, "running")
    assert running["generation"] == 2  # one start, one new generation
    assert len(await containers_of(stack, wid)) == 1
    starting = [e for e in await stack.events(wid) if e["type"] == "starting"]
    assert len(starting) == 2  # generation 1 (create) and 2

    # A stop sent with a start follows it (or is refused): never lost, never a half state.
    await stack.api.post(f"{WORKLOADS}{wid}/stop/")
    await stack.wait_status(wid, "stopped")
    codes = await together(stack, start, stop)
    assert codes[0] == 202 and codes[1] in (202, 409), codes
    final = "stopped" if codes[1] == 202 else "running"
    settled = await stack.wait_status(wid, final)
    assert settled["generation"] == 3
    expected = 0 if final == "stopped" else 1
    await eventually(
        lambda: containers_of(stack, wid),
        lambda found: len(found) == expected,
        30,
        f"{expected} container(s) after the {final} workload settled",
    )


async def test_two_swaps_sent_together_swap_once(stack: Stack) -> None:
    v1, collection = await running_workload(stack, "1")
    v2, _ = await running_workload(stack, "2", collection)
    v3, _ = await running_workload(stack, "3", collection)
    did = (await deploy(stack, v1))["id"]
    swap = f"{DEPLOYMENTS}{did}/swap/"
    codes = await together(stack, (swap, {"workloadId": v2}), (swap, {"workloadId": v3}))
    assert sorted(codes) == [202, 409], codes
    swaps = (await stack.api.get(f"{DEPLOYMENTS}{did}/swaps/")).json()["data"]
    assert len(swaps) == 1
    winner = v2 if codes[0] == 202 else v3
    assert swaps[0]["toWorkloadId"] == winner
    moved = await eventually(
        lambda: stack.api.get(f"{DEPLOYMENTS}{did}/"),
        lambda response: response.json()["workloadId"] == winner,
        90,
        "traffic to move to the swap that was accepted",
    )
    assert moved.status_code == 200
