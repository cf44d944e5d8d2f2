"""Deployments end to end: governed invoke, zero-downtime swap, rollback, revocation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.e2e.conftest import WORKLOADS, Stack, eventually
from tests.e2e.test_workload_lifecycle import READY

DEPLOYMENTS = "/api/v2/console/deployments/"


def version_env(version: str) -> dict[str, Any]:
    return {"environmentVars": [{"name": "VERSION", "value": version}], "readinessProbe": READY}


async def running_workload(
    stack: Stack, version: str, collection: str | None = None
) -> tuple[str, str]:
    artifact = await stack.registered(f"svc-{version}", collection, **version_env(version))
    workload = await stack.workload_of(artifact["id"], name=f"svc-{version}")
    await stack.wait_status(workload, "running")
    return workload, artifact["collectionId"]


async def deploy(stack: Stack, workload_id: str) -> dict[str, Any]:
    response = await stack.api.post(
        DEPLOYMENTS,
        json={"name": "prod", "workloadId": workload_id, "health": {"intervalSeconds": 1}},
    )
    assert response.status_code == 201, response.text
    deployment: dict[str, Any] = response.json()
    return deployment


async def token_for(stack: Stack, deployment_id: str) -> str:
    response = await stack.api.post(f"{DEPLOYMENTS}{deployment_id}/tokens/", json={"name": "app"})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


async def swap_status(stack: Stack, deployment_id: str) -> str:
    swaps = (await stack.api.get(f"{DEPLOYMENTS}{deployment_id}/swaps/")).json()["data"]
    status: str = swaps[0]["status"]
    return status


async def test_only_registered_workloads_deploy(stack: Stack) -> None:
    draft = (await stack.create(readinessProbe=READY))["id"]
    response = await stack.api.post(DEPLOYMENTS, json={"name": "x", "workloadId": draft})
    assert response.status_code == 409
    assert "draft" in response.json()["message"]
    missing = await stack.api.post(DEPLOYMENTS, json={"name": "x", "workloadId": "nope"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == [
        "body",
        "workloadId",
    ]


async def test_invoke_swap_with_zero_failed_requests(stack: Stack) -> None:
    v1, collection = await running_workload(stack, "1")
    deployment = await deploy(stack, v1)
    did = deployment["id"]
    assert deployment["status"] == "running" and deployment["role"] == "owner"
    assert deployment["swap"] is None
    token = await token_for(stack, did)
    url = f"{stack.gateway_url}/api/v2/endpoints/deployments/{did}/cgi-bin/env"

    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        first = await client.get(url)
        assert first.status_code == 200 and "VERSION=1" in first.text
        assert "Authorization" not in first.text
        assert (await client.get(url, headers={"Authorization": ""})).status_code == 401

        # The candidate is stopped: the swap must start it, wait, then move traffic.
        v2, _ = await running_workload(stack, "2", collection)
        await stack.api.post(f"{WORKLOADS}{v2}/stop/")
        await stack.wait_status(v2, "stopped")

        results: list[tuple[int, str]] = []
        stop = asyncio.Event()

        async def hammer() -> None:
            while not stop.is_set():
                response = await client.get(url)
                version = (
                    "2"
                    if "VERSION=2" in response.text
                    else "1"
                    if "VERSION=1" in response.text
                    else "?"
                )
                results.append((response.status_code, version))

        loops = [asyncio.create_task(hammer()) for _ in range(4)]
        swap = await stack.api.post(f"{DEPLOYMENTS}{did}/swap/", json={"workloadId": v2})
        assert swap.status_code == 202, swap.text
        assert swap.json()["status"] == "starting" and swap.json()["fromWorkloadId"] == v1
        # A swap in progress is a field of its own: the deployment keeps running meanwhile.
        during = (await stack.api.get(f"{DEPLOYMENTS}{did}/")).json()
        assert during["swap"]["id"] == swap.json()["id"] and during["status"] == "running"
        await eventually(
            lambda: swap_status(stack, did), lambda s: s == "completed", 90, "swap done"
        )
        await asyncio.sleep(1)
        stop.set()
        await asyncio.gather(*loops)

    failures = [r for r in results if r[0] != 200 or r[1] == "?"]
    assert failures == [], failures[:5]
    versions = [version for _, version in results]
    assert "1" in versions and versions[-10:] == ["2"] * 10, versions[-20:]
    assert len(results) > 50
    current = (await stack.api.get(f"{DEPLOYMENTS}{did}/")).json()
    assert current["workloadId"] == v2 and current["status"] == "running"
    assert current["swap"] is None
    await eventually(
        lambda: stack.api.get(f"{DEPLOYMENTS}{did}/"),
        lambda r: r.json()["health"]["status"] == "healthy",
        30,
        "the new workload checked healthy",
    )
    await stack.wait_status(v1, "stopped", within=30)
    events = [
        e["type"] for e in (await stack.api.get(f"{DEPLOYMENTS}{did}/events/")).json()["data"]
    ]
    assert {"created", "swap_started", "swap_switched"} <= set(events)


async def test_swap_rolls_back_when_the_candidate_never_runs(stack: Stack) -> None:
    v1, collection = await running_workload(stack, "1")
    did = (await deploy(stack, v1))["id"]
    artifact = await stack.registered(
        "broken", collection, command=["never-ready"], readinessProbe=READY
    )
    broken = await stack.workload_of(artifact["id"], name="broken")
    await stack.api.post(f"{WORKLOADS}{broken}/stop/")
    await stack.wait_status(broken, "stopped")

    response = await stack.api.post(
        f"{DEPLOYMENTS}{did}/swap/", json={"workloadId": broken, "readyTimeoutSeconds": 4}
    )
    assert response.status_code == 202
    await eventually(lambda: swap_status(stack, did), lambda s: s == "rolled_back", 60, "rollback")
    swap = (await stack.api.get(f"{DEPLOYMENTS}{did}/swaps/")).json()["data"][0]
    assert "not running in time" in swap["reason"], swap
    deployment = (await stack.api.get(f"{DEPLOYMENTS}{did}/")).json()
    assert deployment["workloadId"] == v1 and deployment["status"] == "running"
    assert deployment["swap"] is None
    # The swap started the candidate, so the rollback stops it again.
    await stack.wait_status(broken, "stopped", within=30)
    invoke = await stack.invoke.get(f"/api/v2/endpoints/deployments/{did}/cgi-bin/env")
    assert invoke.status_code == 200 and "VERSION=1" in invoke.text


async def test_cancel_a_swap(stack: Stack) -> None:
    v1, collection = await running_workload(stack, "1")
    did = (await deploy(stack, v1))["id"]
    artifact = await stack.registered(
        "slow", collection, command=["slow-start", "60"], readinessProbe=READY
    )
    slow = await stack.workload_of(artifact["id"], name="slow")
    assert (
        await stack.api.post(f"{DEPLOYMENTS}{did}/swap/", json={"workloadId": slow})
    ).status_code == 202
    again = await stack.api.post(f"{DEPLOYMENTS}{did}/swap/", json={"workloadId": slow})
    assert again.status_code == 409 and "in progress" in again.json()["message"]
    cancelled = await stack.api.delete(f"{DEPLOYMENTS}{did}/swap/")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert (await stack.api.get(f"{DEPLOYMENTS}{did}/")).json()["workloadId"] == v1
    assert (await stack.api.delete(f"{DEPLOYMENTS}{did}/swap/")).status_code == 409


async def test_revoked_token_is_refused(stack: Stack) -> None:
    # Eventually, with a bound a loaded machine keeps; the promise of "within a second" rests on
    # the gateway's cache lifetimes (`tests/test_gateway_processes.py` checks them).
    v1, _ = await running_workload(stack, "1")
    did = (await deploy(stack, v1))["id"]
    token = await token_for(stack, did)
    url = f"{stack.gateway_url}/api/v2/endpoints/deployments/{did}/healthz"
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as client:
        assert (await client.get(url)).status_code == 200
        token_id = (await stack.api.get(f"{DEPLOYMENTS}{did}/tokens/")).json()[0]["id"]
        revoked = await stack.api.delete(f"{DEPLOYMENTS}{did}/tokens/{token_id}/")
        assert revoked.status_code == 200 and revoked.json()["revokedAt"]
        await eventually(
            lambda: client.get(url), lambda r: r.status_code == 401, 30, "the token refused"
        )


async def test_health_and_deployed_workload_protection(stack: Stack) -> None:
    v1, _ = await running_workload(stack, "1")
    did = (await deploy(stack, v1))["id"]
    health = await eventually(
        lambda: stack.api.get(f"{DEPLOYMENTS}{did}/health/"),
        lambda r: r.json()["availability"]["checks"] >= 2,
        30,
        "two health checks",
    )
    body = health.json()
    assert body["status"] == "healthy" and body["lastCheck"]["ok"] is True
    assert body["consecutiveFailures"] == 0 and body["availability"]["ratio"] == 1.0
    refused = await stack.api.delete(f"{WORKLOADS}{v1}/")
    assert refused.status_code == 409 and did in refused.json()["message"]

    # The workload stops: the deployment says so, and its health is no longer checked.
    await stack.api.post(f"{WORKLOADS}{v1}/stop/")
    stopped = await eventually(
        lambda: stack.api.get(f"{DEPLOYMENTS}{did}/"),
        lambda r: r.json()["status"] == "stopped",
        30,
        "the deployment to be stopped",
    )
    assert v1 in stopped.json()["statusReason"]
    unchecked = await eventually(
        lambda: stack.api.get(f"{DEPLOYMENTS}{did}/"),
        lambda r: r.json()["health"]["status"] == "unknown",
        30,
        "its health to be unknown",
    )
    assert v1 in unchecked.json()["health"]["reason"]
    # While it is stopping its replicas drain (and may still answer); once stopped, nothing does.
    await stack.wait_status(v1, "stopped", within=30)
    down = await stack.invoke.get(f"/api/v2/endpoints/deployments/{did}/healthz")
    assert down.status_code == 503 and down.headers["retry-after"]
    assert (await stack.api.delete(f"{DEPLOYMENTS}{did}/")).status_code == 204
    assert (await stack.api.get(f"{DEPLOYMENTS}{did}/")).status_code == 404
