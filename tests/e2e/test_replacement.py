"""In-place replacement end to end, on real containers under a continuous request loop on the
workload's own endpoint: 50% (with an analysis of both sides' calls) then 100% to the new
artifact, the workload restarted on it, with no failed call, and the workload's id and
endpoint unchanged. A rollout whose candidate
is made from an artifact is checked here too: aborted, the candidate it made is stopped."""

from __future__ import annotations

import asyncio

import httpx

from tests.e2e.conftest import WORKLOADS, Stack, eventually
from tests.e2e.test_deployments import (
    DEPLOYMENTS,
    deploy,
    running_workload,
    version_env,
)
from tests.e2e.test_rollouts import Loop, share


async def event_types(stack: Stack, workload_id: str) -> list[str]:
    return [event["type"] for event in await stack.events(workload_id)]


async def test_a_replacement_moves_the_workload_fifty_then_all_with_no_failed_call(
    stack: Stack,
) -> None:
    v1, collection = await running_workload(stack, "1")
    v2 = await stack.registered("svc-2", collection, **version_env("2"))
    before = await stack.get(v1)
    replacement = f"{WORKLOADS}{v1}/replacement/"
    body = {
        "artifactId": v2["id"],
        "strategy": "rolling",
        "config": {"warmupDurationMinutes": 0, "keepOldVersionMinutes": 0},
        "steps": [
            {"setWeight": 50},
            {"analysis": {"durationSeconds": 12, "maxErrorRate": 0.05, "minRequests": 5}},
        ],
    }
    loop = Loop(stack.invoke, f"/api/v2/endpoints/workloads/{v1}/cgi-bin/env")
    callers = [asyncio.create_task(loop.call()) for _ in range(4)]
    try:
        created = await stack.api.post(replacement, json=body)
        assert created.status_code == 202, created.text
        assert (created.json()["status"], created.json()["previousArtifactId"]) == (
            "initializing",
            before["artifact"]["id"],
        )
        paused: httpx.Response = await eventually(
            lambda: stack.api.get(replacement),
            lambda r: r.status_code != 200 or r.json()["currentStep"] == 1,
            120,
            "replacement analysing at 50%",
        )
        assert paused.json()["weight"] == 50, paused.text
        await asyncio.sleep(1.5)  # every gateway reloads its routes twice a second
        at_fifty = await loop.measure("50", 150)
        await eventually(
            lambda: event_types(stack, v1),
            lambda types: "replacement_completed" in types,
            180,
            "replacement completed",
        )
        assert (await stack.api.get(replacement)).status_code == 404  # none in progress
        await asyncio.sleep(1.5)
        after = await loop.measure("after", 100)
    finally:
        loop.stop.set()
        await asyncio.gather(*callers)

    failures = [r for r in loop.results if r[1] != 200 or r[2] == "?"]
    assert failures == [], failures[:5]
    assert set(at_fifty) == {"1", "2"} and abs(share(at_fifty) - 0.5) <= 0.1, at_fifty
    assert set(after) == {"2"}, after
    now = await stack.get(v1)
    assert (now["id"], now["endpoint"], now["status"]) == (v1, before["endpoint"], "running")
    assert now["artifact"]["id"] == v2["id"] and now["artifact"]["version"] == 2
    candidate = created.json()["candidateWorkloadId"]
    assert (await stack.api.get(f"{WORKLOADS}{candidate}/")).status_code == 404
    trail = [t for t in await event_types(stack, v1) if t.startswith("replacement_")]
    assert trail[0] == "replacement_requested" and trail[-1] == "replacement_completed"
    assert "replacement_switched" in trail and "replacement_handed_back" in trail
    # The analysis read both sides' calls of the workload's own endpoint.
    assert "replacement_analysis_passed" in trail


async def test_a_rollout_from_an_artifact_stops_the_candidate_it_made_on_abort(
    stack: Stack,
) -> None:
    v1, collection = await running_workload(stack, "1")
    did = (await deploy(stack, v1))["id"]
    v2 = await stack.registered("svc-2", collection, **version_env("2"))
    rollouts = f"{DEPLOYMENTS}{did}/rollouts/"
    created = await stack.api.post(
        rollouts, json={"artifactId": v2["id"], "steps": [{"setWeight": 20}, {"pause": {}}]}
    )
    assert created.status_code == 202, created.text
    rid, candidate = created.json()["id"], created.json()["candidateWorkloadId"]
    made = await stack.get(candidate)
    assert made["artifact"]["id"] == v2["id"]
    assert made["runtime"] == (await stack.get(v1))["runtime"]  # the stable workload's
    await eventually(
        lambda: stack.api.get(f"{rollouts}{rid}/"),
        lambda r: r.json()["currentStep"] == 1,
        120,
        "rollout pausing",
    )
    aborted = await stack.api.post(f"{rollouts}{rid}/abort/")
    assert aborted.status_code == 200 and aborted.json()["status"] == "aborted", aborted.text
    await stack.wait_status(candidate, "stopped", within=60)
    assert (await stack.api.get(f"{DEPLOYMENTS}{did}/")).json()["workloadId"] == v1
