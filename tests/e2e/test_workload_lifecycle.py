"""Workloads end to end on real Podman containers, through the HTTP API."""

from __future__ import annotations

import asyncio
import time

import aiodocker

from runtimes.base import LABEL_WORKLOAD
from tests.e2e.conftest import WORKLOADS, Stack, eventually

READY = {"path": "/ready", "periodSeconds": 1}


async def containers_of(stack: Stack, workload_id: str) -> list[dict[str, object]]:
    docker = aiodocker.Docker(url=stack.settings.docker_url)
    try:
        found = await docker.containers.list(
            all=True, filters={"label": [f"{LABEL_WORKLOAD}={workload_id}"]}
        )
        return [c._container for c in found]
    finally:
        await docker.close()


async def test_serve_invoke_stop_start(stack: Stack) -> None:
    created = await stack.create(readinessProbe=READY)
    wid = created["id"]
    assert created["status"] == "submitted"
    assert created["endpoint"] == f"{stack.gateway_url}/api/v2/endpoints/workloads/{wid}/"
    running = await stack.wait_status(wid, "running")
    assert running["generation"] == 1

    replicas = await stack.replicas(wid)
    assert [(r["ready"], r["state"]) for r in replicas] == [(True, "running")]
    assert replicas[0]["probes"]["readiness"]["ok"] is True

    echo = await stack.invoke.post(
        f"/api/v2/endpoints/workloads/{wid}/cgi-bin/echo?color=blue",
        content=b"hello body",
        headers={"X-Custom": "42"},
    )
    assert echo.status_code == 200, echo.text
    seen = echo.json()
    assert (seen["method"], seen["path"], seen["query"]) == ("POST", "/cgi-bin/echo", "color=blue")
    assert seen["body"] == "hello body" and seen["headers"]["x-custom"] == "42"
    assert "authorization" not in seen["headers"]
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-request-id"] == echo.headers["x-request-id"]

    events = [e["type"] for e in await stack.events(wid)]
    assert events[:3] == ["created", "starting", "replica_created"] or "running" in events
    assert {"created", "starting", "running"} <= set(events)

    logs = await stack.api.get(f"{WORKLOADS}{wid}/logs/", params={"tail": 10})
    assert "serving on port 8080" in logs.text

    stopping = await stack.api.post(f"{WORKLOADS}{wid}/stop/")
    assert stopping.status_code == 202 and stopping.json()["status"] == "stopping"
    await stack.wait_status(wid, "stopped")
    assert await containers_of(stack, wid) == []
    down = await stack.invoke.get(f"/api/v2/endpoints/workloads/{wid}/healthz")
    assert down.status_code == 503 and down.headers["retry-after"]

    again = await stack.api.post(f"{WORKLOADS}{wid}/start/")
    assert again.status_code == 202 and again.json()["status"] == "initializing"
    restarted = await stack.wait_status(wid, "running")
    assert restarted["generation"] == 2
    assert (await stack.invoke.get(f"/api/v2/endpoints/workloads/{wid}/healthz")).status_code == 200


async def test_invalid_transitions_are_409(stack: Stack) -> None:
    wid = (await stack.create())["id"]
    await stack.wait_status(wid, "running")
    response = await stack.api.post(f"{WORKLOADS}{wid}/start/")
    assert response.status_code == 409
    assert "running" in response.json()["message"]
    await stack.api.post(f"{WORKLOADS}{wid}/stop/")
    await stack.wait_status(wid, "stopped")
    response = await stack.api.post(f"{WORKLOADS}{wid}/stop/")
    assert response.status_code == 409 and "stopped" in response.json()["message"]


async def test_crash_loop_ends_in_errored_with_the_cause(stack: Stack) -> None:
    wid = (await stack.create(command=["crash"]))["id"]
    errored = await stack.wait_status(wid, "errored")
    reason = errored["statusReason"]
    assert "3" in reason and "crashing on purpose" in reason, reason
    types = [e["type"] for e in await stack.events(wid)]
    assert "errored" in types
    # The stopped containers stay, so their logs explain the failure.
    logs = await stack.api.get(f"{WORKLOADS}{wid}/logs/", params={"tail": 50})
    assert "crashing on purpose" in logs.text


async def test_never_ready_is_errored_naming_the_probe(stack: Stack) -> None:
    wid = (await stack.create(command=["never-ready"], readinessProbe=READY))["id"]
    errored = await stack.wait_status(wid, "errored", within=60)
    assert "not ready" in errored["statusReason"] and "readiness" in errored["statusReason"]


async def test_slow_start_waits_for_the_startup_probe(stack: Stack) -> None:
    started = time.monotonic()
    wid = (
        await stack.create(
            command=["slow-start", "3"],
            startupProbe={"path": "/healthz", "periodSeconds": 1, "failureThreshold": 30},
            readinessProbe=READY,
        )
    )["id"]
    await stack.wait_status(wid, "running")
    assert time.monotonic() - started >= 3


async def test_missing_image_fails_fast(stack: Stack) -> None:
    # Fast: errored because the pull failed, not after the ready timeout (the bound is generous).
    wid = (await stack.create(imageUri="registry.invalid/no-such-image:1"))["id"]
    errored = await stack.wait_status(wid, "errored", within=60)
    assert "registry.invalid/no-such-image:1" in errored["statusReason"]
    assert "pulling it failed" in errored["statusReason"], errored["statusReason"]


async def test_bad_entrypoint_fails_fast(stack: Stack) -> None:
    wid = (await stack.create(entrypoint=["/no/such/binary"]))["id"]
    errored = await stack.wait_status(wid, "errored", within=30)
    assert (
        "/no/such/binary" in errored["statusReason"]
        or "no such file" in errored["statusReason"].lower()
    )


async def test_stop_during_initializing_leaves_nothing(stack: Stack) -> None:
    wid = (await stack.create(command=["slow-start", "60"], readinessProbe=READY))["id"]
    await stack.wait_status(wid, "initializing")
    await eventually(lambda: containers_of(stack, wid), bool, 30, "a container")
    response = await stack.api.post(f"{WORKLOADS}{wid}/stop/")
    assert response.status_code == 202
    await stack.wait_status(wid, "stopped")
    assert await containers_of(stack, wid) == []
    assert await stack.replicas(wid) == []


async def test_delete_removes_containers_rows_and_workflow(stack: Stack) -> None:
    wid = (await stack.create())["id"]
    await stack.wait_status(wid, "running")
    response = await stack.api.delete(f"{WORKLOADS}{wid}/")
    assert response.status_code == 204
    assert (await stack.api.get(f"{WORKLOADS}{wid}/")).status_code == 404
    assert await containers_of(stack, wid) == []
    description = await stack.temporal.get_workflow_handle(f"workload-{wid}").describe()
    assert description.status is not None and description.status.name == "COMPLETED"


async def test_killed_container_is_restarted_and_recorded(stack: Stack) -> None:
    wid = (await stack.create(readinessProbe=READY))["id"]
    await stack.wait_status(wid, "running")
    docker = aiodocker.Docker(url=stack.settings.docker_url)
    try:
        (victim,) = await docker.containers.list(filters={"label": [f"{LABEL_WORKLOAD}={wid}"]})
        await victim.kill()
    finally:
        await docker.close()
    replicas = await eventually(
        lambda: stack.replicas(wid),
        lambda rs: rs and rs[0]["restarts"] >= 1 and rs[0]["ready"],
        30,
        "the replica to restart",
    )
    assert replicas[0]["restarts"] == 1
    types = [e["type"] for e in await stack.events(wid)]
    assert "container_exited" in types or "replica_restarted" in types
    assert (await stack.get(wid))["status"] == "running"


async def test_scale_up_and_round_robin(stack: Stack) -> None:
    wid = (await stack.create(readinessProbe=READY))["id"]
    await stack.wait_status(wid, "running")
    response = await stack.api.patch(
        f"{WORKLOADS}{wid}/", json={"runtime": {"containerGroups": [{"replicaCount": 2}]}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["runtime"]["containerGroups"][0]["replicaCount"] == 2
    await eventually(
        lambda: stack.replicas(wid),
        lambda rs: len([r for r in rs if r["ready"]]) == 2,
        30,
        "2 ready",
    )
    await asyncio.sleep(1)  # the gateway's table refreshes twice a second
    hosts = set()
    for _ in range(6):
        env = await stack.invoke.get(f"/api/v2/endpoints/workloads/{wid}/cgi-bin/env")
        hosts |= {line for line in env.text.splitlines() if line.startswith("HOSTNAME=")}
    assert len(hosts) == 2
    assert "scaled" in [e["type"] for e in await stack.events(wid)]


async def test_draft_edits_apply_at_next_start(stack: Stack) -> None:
    created = await stack.create(environmentVars=[{"name": "COLOR", "value": "red"}])
    wid, artifact_id = created["id"], created["artifactId"]
    await stack.wait_status(wid, "running")
    assert (
        "COLOR=red"
        in (await stack.invoke.get(f"/api/v2/endpoints/workloads/{wid}/cgi-bin/env")).text
    )
    spec = created["artifact"]
    artifact = (await stack.api.get(f"/api/v2/registry/artifacts/{artifact_id}/")).json()
    container = artifact["spec"]["containerGroups"][0]["containers"][0]
    container["environmentVars"] = [{"name": "COLOR", "value": "green"}]
    edited = await stack.api.patch(
        f"/api/v2/registry/artifacts/{artifact_id}/", json={"spec": artifact["spec"]}
    )
    assert edited.status_code == 200 and spec["status"] == "draft"
    await stack.api.post(f"{WORKLOADS}{wid}/stop/")
    await stack.wait_status(wid, "stopped")
    await stack.api.post(f"{WORKLOADS}{wid}/start/")
    await stack.wait_status(wid, "running")
    await asyncio.sleep(1)
    env = await stack.invoke.get(f"/api/v2/endpoints/workloads/{wid}/cgi-bin/env")
    assert "COLOR=green" in env.text

    registered = await stack.api.patch(
        f"/api/v2/registry/artifacts/{artifact_id}/", json={"status": "registered"}
    )
    assert registered.status_code == 200
    frozen = await stack.api.patch(
        f"/api/v2/registry/artifacts/{artifact_id}/", json={"spec": artifact["spec"]}
    )
    assert frozen.status_code == 409
    assert (await stack.get(wid))["artifact"]["status"] == "registered"


async def test_sidecar_shares_the_primary_network(stack: Stack) -> None:
    sidecar = {
        "name": "probe-sidecar",
        "imageUri": stack.image,
        "primary": False,
        "command": ["sh", "-c", "sleep 3600"],
        "readinessProbe": {
            "exec": {"command": ["wget", "-qO-", "http://127.0.0.1:8080/healthz"]},
            "periodSeconds": 1,
        },
    }
    body = {
        "name": "pair",
        "artifact": {
            "spec": {
                "containerGroups": [
                    {"containers": [stack.container(primary=True, readinessProbe=READY), sidecar]}
                ]
            }
        },
    }
    created = await stack.api.post(WORKLOADS, json=body)
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    await stack.wait_status(wid, "running")
    names = sorted(str(c["Names"]) for c in await containers_of(stack, wid))
    assert len(names) == 2


async def test_logs_tail_and_follow(stack: Stack) -> None:
    wid = (await stack.create(command=["ticker", "0.2"]))["id"]
    await stack.wait_status(wid, "running")
    tail = await stack.api.get(f"{WORKLOADS}{wid}/logs/", params={"tail": 3})
    assert len(tail.text.splitlines()) == 3
    as_json = await stack.api.get(f"{WORKLOADS}{wid}/logs/", params={"tail": 4, "format": "json"})
    streams = {line.split('"stream":"')[1].split('"')[0] for line in as_json.text.splitlines()}
    assert streams == {"stdout", "stderr"}
    seen: list[str] = []
    async with stack.api.stream(
        "GET", f"{WORKLOADS}{wid}/logs/", params={"tail": 0, "follow": "true"}
    ) as response:
        async for line in response.aiter_lines():
            seen.append(line)
            if len(seen) >= 4:
                break
    assert any("tick" in line for line in seen)


async def test_events_are_paginated(stack: Stack) -> None:
    wid = (await stack.create())["id"]
    await stack.wait_status(wid, "running")
    first = (await stack.api.get(f"{WORKLOADS}{wid}/events/", params={"limit": 1})).json()
    assert first["count"] == 1 and first["totalCount"] >= 3 and first["next"]
    assert first["data"][0]["type"] == "created"
    newest = (
        await stack.api.get(
            f"{WORKLOADS}{wid}/events/", params={"limit": 1, "orderBy": "-timestamp"}
        )
    ).json()
    assert newest["data"][0]["id"] > first["data"][0]["id"]
