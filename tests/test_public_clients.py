"""Issue 11, part 1: the public API's own clients work unchanged. One test per numbered item,
through the HTTP API, with the request bodies those clients send, on SQLite and PostgreSQL.

Workloads and deployments are created against a real Temporal dev server (their workflows
start on a task queue no worker serves: nothing here needs them to run; where a test needs what
they record, it writes it as their activities do).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, cast

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from activities.deployments import DeploymentActivities
from api.app import create_app
from catalog.tables import DeploymentTraffic
from client import AsyncClient, WaitFailedError
from config.settings import Settings
from models.spec import ArtifactSpec
from models.status import WorkloadStatus
from models.workloads import WorkloadRuntime
from services import workloads
from services.bundles import BundleCatalog
from services.workload_runtime import build_plan
from tests.conftest import ADMIN_KEY, client_for
from tests.factories import ready_replica, spec
from tests.support.gateway import gateway_in_loop
from tests.support.upstream import aiohttp_server, answering
from workflows.deployment_contract import BeginSwapInput, RecordDeploymentInput, SwapRecordInput

WORKLOADS = "/api/v2/console/workloads/"
DEPLOYMENTS = "/api/v2/console/deployments/"
ARTIFACTS = "/api/v2/registry/artifacts/"
RESOURCES = [{"type": "resource_bundle", "resourceBundleId": "cpu.small"}]
# The older shape (bounds on each policy) and the newer one (bounds on `autoscaling`).
POLICY_BOUNDS = {
    "enabled": True,
    "policies": [
        {
            "scalingMetric": "httpRequestsConcurrency",
            "target": 10,
            "minCount": 1,
            "maxCount": 4,
            "priority": 1,
        }
    ],
}
HOISTED = {
    "enabled": True,
    "minReplicaCount": 1,
    "maxReplicaCount": 5,
    "policies": [{"scalingMetric": "cpuAverageUtilization", "target": 70}],
}


@pytest.fixture
async def live_app(
    settings: Settings, temporal_env: WorkflowEnvironment, task_queue: str
) -> AsyncIterator[FastAPI]:
    settings = settings.model_copy(update={"temporal_task_queue": task_queue})
    app = create_app(settings, temporal_client=temporal_env.client)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(live_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(live_app, ADMIN_KEY) as client:
        yield client


def locs(response: httpx.Response) -> list[tuple[Any, ...]]:
    return [tuple(d["loc"]) for d in response.json()["detail"]]


async def create(api: httpx.AsyncClient, runtime: dict[str, Any], **fields: Any) -> httpx.Response:
    body = {"name": "svc", "artifact": {"name": "svc", "spec": spec()}, "runtime": runtime}
    return await api.post(WORKLOADS, json={**body, **fields})


async def registered(api: httpx.AsyncClient, name: str = "svc") -> str:
    """A deployable workload (its inline artifact registered); its id."""
    artifact = {"name": name, "status": "registered", "spec": spec()}
    made = await create(api, {}, name=name, artifact=artifact)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def test_1_flat_runtime_and_autoscaling(api: httpx.AsyncClient) -> None:
    flat = await create(api, {"replicaCount": 2, "resources": RESOURCES})
    assert flat.status_code == 201, flat.text
    [group] = flat.json()["runtime"]["containerGroups"]
    assert (group["name"], group["replicaCount"], group["resourceBundles"]) == (
        "default",
        2,
        ["cpu.small"],
    )
    assert group["autoscaling"] is None and group["resolvedBundle"]["id"] == "cpu.small"
    shown = (await api.get(f"{WORKLOADS}{flat.json()['id']}/")).json()
    assert shown["runtime"] == flat.json()["runtime"]

    # The flat form with autoscaling: the bounds are hoisted onto `autoscaling` and stored.
    scaled = await create(api, {"resources": RESOURCES, "autoscaling": POLICY_BOUNDS})
    assert scaled.status_code == 201, scaled.text
    [group] = (await api.get(f"{WORKLOADS}{scaled.json()['id']}/")).json()["runtime"][
        "containerGroups"
    ]
    assert group["autoscaling"] == {
        "enabled": True,
        "minReplicaCount": 1,
        "maxReplicaCount": 4,
        "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 10, "priority": 1}],
    }
    assert group["replicaCount"] == 1  # the minimum, until the autoscaler acts

    # Per container group, the newer shape.
    per_group = await create(
        api, {"containerGroups": [{"name": "default", "autoscaling": HOISTED}]}
    )
    assert per_group.status_code == 201, per_group.text
    [group] = per_group.json()["runtime"]["containerGroups"]
    assert group["autoscaling"]["maxReplicaCount"] == 5

    # replicaCount and enabled autoscaling exclude each other, in both forms.
    both = await create(
        api, {"replicaCount": 2, "resources": RESOURCES, "autoscaling": POLICY_BOUNDS}
    )
    assert both.status_code == 422 and locs(both) == [("body", "runtime", "replicaCount")]
    both = await create(api, {"containerGroups": [{"replicaCount": 2, "autoscaling": HOISTED}]})
    assert both.status_code == 422
    assert locs(both) == [("body", "runtime", "containerGroups", 0, "replicaCount")]
    # Disabled autoscaling goes with a fixed count.
    off = await create(api, {"replicaCount": 2, "autoscaling": {**HOISTED, "enabled": False}})
    assert off.status_code == 201, off.text

    bad: list[dict[str, Any]] = [
        ({"autoscaling": {"enabled": True, "policies": [{"scalingMetric": "qps", "target": 1}]}}),
        ({"autoscaling": {"enabled": True, "policies": []}, "resources": RESOURCES}),
        ({"autoscaling": {**HOISTED, "minReplicaCount": 6}}),
        ({"replicaCount": 2, "containerGroups": [{"replicaCount": 2}]}),
        ({"replicaCount": 2, "bundleSelection": "fast"}),  # still strict about unknown fields
    ]
    for runtime in bad:
        refused = await create(api, runtime)
        assert refused.status_code == 422, runtime
        assert all(loc[:2] == ("body", "runtime") for loc in locs(refused)), refused.text
    listed = (await api.get(WORKLOADS)).json()
    assert listed["totalCount"] == 4  # nothing half-written by the refusals


async def test_2_resource_request_and_memory_in_bytes(api: httpx.AsyncClient) -> None:
    request = {"cpu": 0.5, "memory": 536870912, "gpu": 0}
    sidecar = {"name": "shipper", "imageUri": "localhost/shipper:1", "primary": False}
    body = spec(primary=True, resourceRequest=request)
    body["containerGroups"][0]["containers"].append({**sidecar, "resourceRequest": {"gpu": 1}})
    made = await api.post(ARTIFACTS, json={"name": "svc", "spec": body})
    assert made.status_code == 201, made.text
    main = made.json()["spec"]["containerGroups"][0]["containers"][0]
    assert main["resourceRequest"] == request
    runtime = {
        "containerGroups": [
            {
                "resourceBundles": ["gpu.t4.small"],
                "containers": [
                    {"name": "main", "resourceAllocation": {"cpu": 0.25, "memory": 268435456}}
                ],
            }
        ]
    }
    workload = await api.post(
        WORKLOADS, json={"name": "svc", "artifactId": made.json()["id"], "runtime": runtime}
    )
    assert workload.status_code == 201, workload.text
    allocation = workload.json()["runtime"]["containerGroups"][0]["containers"][0]
    assert allocation["resourceAllocation"]["memory"] == 268435456

    # What the containers run with: the allocation wins over the request, which lowers the
    # bundle; GPUs go to the containers that request them.
    plan = build_plan(
        "w",
        1,
        ArtifactSpec.model_validate(made.json()["spec"]),
        WorkloadRuntime.model_validate(runtime),
        BundleCatalog.load(),
    )
    main_plan, shipper_plan = plan.groups[0].containers
    assert (main_plan.cpu, main_plan.memory_bytes, main_plan.gpu_count) == (0.25, 2**28, 0)
    assert (shipper_plan.cpu, shipper_plan.memory_bytes, shipper_plan.gpu_count) == (
        4,
        16 * 2**30,
        1,
    )

    # The bundle must hold what is requested; memory below 6Mi is no request.
    too_big = await api.post(
        WORKLOADS,
        json={
            "name": "svc",
            "artifactId": made.json()["id"],
            "runtime": {"replicaCount": 1, "resources": RESOURCES},
        },
    )
    assert too_big.status_code == 422
    assert locs(too_big) == [("body", "runtime", "resources")]
    assert "GPU" in too_big.json()["detail"][0]["msg"]
    tiny = await api.post(
        ARTIFACTS, json={"name": "t", "spec": spec(resourceRequest={"memory": 1024})}
    )
    assert tiny.status_code == 422
    where = ("body", "spec", "containerGroups", 0, "containers", 0, "resourceRequest", "memory")
    assert locs(tiny) == [where]


async def test_3_inline_artifact_registered_deploys(api: httpx.AsyncClient) -> None:
    body = {
        "name": "svc",
        "artifact": {"name": "svc", "status": "registered", "spec": spec()},
        "runtime": {"replicaCount": 1, "resources": RESOURCES},
    }
    made = await api.post(WORKLOADS, json=body)
    assert made.status_code == 201, made.text
    artifact = made.json()["artifact"]
    assert (artifact["status"], artifact["version"]) == ("registered", 1)
    collection = await api.get(f"/api/v2/registry/artifactCollections/{artifact['collectionId']}/")
    assert collection.status_code == 200, collection.text
    deployed = await api.post(DEPLOYMENTS, json={"name": "svc", "workloadId": made.json()["id"]})
    assert deployed.status_code == 201, deployed.text

    draft = await create(api, {}, artifact={"name": "d", "spec": spec()})  # the default
    assert draft.json()["artifact"]["status"] == "draft"
    refused = await api.post(DEPLOYMENTS, json={"name": "d", "workloadId": draft.json()["id"]})
    assert refused.status_code in (409, 422)
    wrong = await create(api, {}, artifact={"name": "x", "status": "locked", "spec": spec()})
    assert wrong.status_code == 422
    assert locs(wrong) == [("body", "artifact", "status")]


async def test_4_importance_on_deployment_create(api: httpx.AsyncClient) -> None:
    workload = await create(
        api, {}, artifact={"name": "svc", "status": "registered", "spec": spec()}
    )
    body = {"name": "svc", "workloadId": workload.json()["id"], "importance": "critical"}
    made = await api.post(DEPLOYMENTS, json=body)
    assert made.status_code == 201, made.text
    url = f"{DEPLOYMENTS}{made.json()['id']}/"
    assert (await api.get(url)).json()["importance"] == "critical"
    assert (await api.patch(url, json={"importance": "moderate"})).json()[
        "importance"
    ] == "moderate"
    listed = (await api.get(DEPLOYMENTS)).json()["data"]
    assert [d["importance"] for d in listed] == ["moderate"]

    other = await registered(api, "o")
    default = await api.post(DEPLOYMENTS, json={"name": "o", "workloadId": other})
    assert default.json()["importance"] == "low"
    wrong = await api.post(DEPLOYMENTS, json={**body, "importance": "urgent"})
    assert wrong.status_code == 422 and locs(wrong) == [("body", "importance")]


async def test_6_bundles_at_the_public_path(live_app: FastAPI, api: httpx.AsyncClient) -> None:
    answer = await api.get("/api/v2/mlops/compute/bundles")
    assert answer.status_code == 200, answer.text
    ours = (await api.get("/api/v2/resourceBundles/", params={"limit": 100})).json()
    assert answer.json()["totalCount"] == ours["totalCount"] > 0
    shown = answer.json()["data"]
    assert shown == ours["data"][: len(shown)]
    with_slash = await api.get("/api/v2/mlops/compute/bundles/", params={"limit": 2})
    assert [b["id"] for b in with_slash.json()["data"]] == ["cpu.nano", "cpu.micro"]
    async with client_for(live_app, None) as anonymous:
        assert (await anonymous.get("/api/v2/mlops/compute/bundles")).status_code == 401


async def test_9_creator_has_id_username_and_email(api: httpx.AsyncClient) -> None:
    workload = await registered(api)
    deployment = await api.post(DEPLOYMENTS, json={"name": "svc", "workloadId": workload})
    shown = [
        (await api.get(f"{WORKLOADS}{workload}/")).json(),
        deployment.json(),
        (await api.get(ARTIFACTS)).json()["data"][0],
    ]
    for body in shown:
        assert body["creator"] == {"id": "admin", "username": "admin", "email": ""}, body
    key = (await api.get("/api/v2/apiKeys/me/")).json()  # made at start-up
    assert key["creator"] == {"id": "system", "username": "system", "email": ""}


async def test_8_deployments_by_workload_ids_with_details(api: httpx.AsyncClient) -> None:
    ids = {}
    for name in ("a", "b", "c"):
        workload = await registered(api, name)
        made = await api.post(DEPLOYMENTS, json={"name": name, "workloadId": workload})
        assert made.status_code == 201, made.text
        ids[name] = (workload, made.json()["id"])
    a, b = ids["a"][0], ids["b"][0]
    answer = await api.get(f"{DEPLOYMENTS}?wid={a}&wid={b}&workloadDetails=true")
    assert answer.status_code == 200, answer.text
    found = answer.json()["data"]
    assert {d["id"] for d in found} == {ids["a"][1], ids["b"][1]}
    assert answer.json()["totalCount"] == 2
    for deployment in found:
        workload = deployment["workload"]
        assert workload["id"] == deployment["workloadId"]
        assert workload["runtime"]["containerGroups"][0]["name"] == "default"
        assert workload["artifact"]["status"] == "registered"
    plain = (await api.get(f"{DEPLOYMENTS}?wid={a}")).json()["data"]
    assert [d["id"] for d in plain] == [ids["a"][1]] and plain[0]["workload"] is None
    assert (await api.get(DEPLOYMENTS)).json()["totalCount"] == 3
    assert (await api.get(f"{DEPLOYMENTS}?wid=nope")).json()["totalCount"] == 0
    assert (await api.get(f"{DEPLOYMENTS}?wid=no%20pe")).status_code == 422


async def _replica(request: web.Request) -> web.Response:
    if request.path == "/slow":
        await asyncio.sleep(0.05)
    status = {"/fail": 500, "/missing": 404}.get(request.path, 200)
    return web.Response(status=status, text=request.path)


async def test_7_deployment_stats_from_the_gateway(
    live_app: FastAPI, api: httpx.AsyncClient
) -> None:
    """Real calls through two gateways (each writes its own rows, as separate processes do) to
    a real HTTP server standing in for the workload's replica."""
    settings = live_app.state.context.settings.model_copy(
        update={"gateway_traffic_flush_seconds": 0.2}
    )
    workload = await registered(api)
    made = await api.post(DEPLOYMENTS, json={"name": "svc", "workloadId": workload})
    deployment = made.json()["id"]
    async with AsyncExitStack() as stack:
        upstream = await stack.enter_async_context(aiohttp_server(answering(_replica)))
        async with live_app.state.context.sessions() as session, session.begin():
            session.add(ready_replica(workload, upstream))
        paths = ["/"] * 15 + ["/slow"] * 5 + ["/fail"] * 2 + ["/missing"] * 3
        for _ in range(2):
            gateway = await stack.enter_async_context(gateway_in_loop(settings))
            caller = await stack.enter_async_context(
                client_for(live_app, ADMIN_KEY, gateway=gateway.url)
            )
            for path in paths:
                await caller.get(f"/api/v2/endpoints/deployments/{deployment}{path}")
            async with client_for(live_app, "wapi_nobody", gateway=gateway.url) as nobody:
                refused = await nobody.get(f"/api/v2/endpoints/deployments/{deployment}/")
            assert refused.status_code == 401  # refused by the gateway: not counted

        url = f"{DEPLOYMENTS}{deployment}/stats/"
        summary: dict[str, Any] = {}
        for _ in range(300):  # the gateways write every 0.2 s; generous on a busy machine
            summary = (await api.get(url)).json()["summary"]
            if summary["totalRequests"] >= 50:
                break
            await asyncio.sleep(0.1)
    assert summary["totalRequests"] == 50, summary
    assert (summary["serverErrors"], summary["userErrors"], summary["errorRate"]) == (4, 6, 0.2)
    # 10 of the 50 calls took at least 50 ms: they are the slowest tenth.
    p50, p90, p99 = (summary[f"responseTimeP{n}"] for n in (50, 90, 99))
    assert p50 <= p90 <= p99 <= summary["responseTimeMax"] * 1.01
    assert p90 >= 50 * 0.99 and summary["responseTimeMax"] >= 50
    async with live_app.state.context.sessions() as session:
        writers = await session.scalars(
            select(DeploymentTraffic.writer).where(DeploymentTraffic.deployment_id == deployment)
        )
        assert len(set(writers)) == 2  # one row per gateway process and minute

    viewer = await api.post(
        "/api/v2/apiKeys/", json={"name": "v", "username": "victor", "role": "viewer"}
    )
    async with client_for(live_app, viewer.json()["key"]) as victor:
        assert (await victor.get(url)).status_code == 404  # no role on the deployment


async def wait_for_running(api: httpx.AsyncClient, url: str, seen: list[str]) -> dict[str, Any]:
    """As the public API's clients wait: poll until `running`, give up on `errored`."""
    for _ in range(600):
        deployment: dict[str, Any] = (await api.get(url)).json()
        if not seen or seen[-1] != deployment["status"]:
            seen.append(deployment["status"])
        if deployment["status"] == "running":
            return deployment
        if deployment["status"] == "errored":
            raise RuntimeError(f"deployment errored: {deployment['statusReason']}")
        await asyncio.sleep(0.05)
    raise TimeoutError(url)


async def test_5_deployment_status_is_the_lifecycle(
    live_app: FastAPI, api: httpx.AsyncClient
) -> None:
    """The catalog is written as the workflows' activities write it (no worker runs here): the
    workload's status by its workflow, the verdict and the swap by the deployment's."""
    sessions = live_app.state.context.sessions
    activities = DeploymentActivities(sessions, cast(Any, None))

    async def workload_is(
        workload_id: str, status: WorkloadStatus, reason: str | None = None, generation: int = 1
    ) -> None:
        async with sessions() as session, session.begin():
            await workloads.record_status(
                session, workload_id, status=status, generation=generation, reason=reason,
                event=status, message=status, actor="system",
            )  # fmt: skip

    workload = await registered(api)
    made = await api.post(DEPLOYMENTS, json={"name": "svc", "workloadId": workload})
    assert made.status_code == 201, made.text
    url = f"{DEPLOYMENTS}{made.json()['id']}/"
    assert made.json()["status"] == "submitted"
    assert made.json()["health"]["status"] == "unknown" and made.json()["swap"] is None

    seen: list[str] = []
    waiting = asyncio.create_task(wait_for_running(api, url, seen))
    for status in ("initializing", "running"):
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await workload_is(workload, status)
    deployment = await asyncio.wait_for(waiting, 60)
    assert seen == ["submitted", "initializing", "running"]
    transport = httpx.ASGITransport(app=live_app)
    async with AsyncClient("http://testserver", ADMIN_KEY, transport=transport) as wapi:
        assert (await wapi.deployments.wait_until(deployment["id"], timeout=30)).status == "running"
    assert deployment["statusReason"] is None

    # The verdict of the health checks and a swap in progress are fields of their own.
    await activities.record_status(
        RecordDeploymentInput(deployment_id=deployment["id"], status="degraded",
            reason="3 health checks failed in a row", event="status_changed", message="m")
    )  # fmt: skip
    candidate = await registered(api, "candidate")
    await activities.begin_swap(
        BeginSwapInput(deployment_id=deployment["id"], swap_id="s1", from_workload_id=workload,
            to_workload_id=candidate, ready_timeout_seconds=60, keep_previous_seconds=0,
            actor="admin")
    )  # fmt: skip
    shown = (await api.get(url)).json()
    assert shown["status"] == "running"
    assert shown["health"] == {
        "path": None, "intervalSeconds": 10, "timeoutSeconds": 2.0, "failureThreshold": 3,
        "status": "degraded", "reason": "3 health checks failed in a row",
    }  # fmt: skip
    swap = shown["swap"]
    assert (swap["id"], swap["status"], swap["toWorkloadId"]) == ("s1", "starting", candidate)
    listed = await api.get(DEPLOYMENTS, params={"status": "running", "healthStatus": "degraded"})
    assert [d["id"] for d in listed.json()["data"]] == [deployment["id"]]
    assert listed.json()["data"][0]["swap"]["id"] == "s1"
    health = (await api.get(f"{url}health/")).json()
    assert (health["status"], health["reason"]) == ("degraded", "3 health checks failed in a row")
    for old in ("active", "degraded", "inactive", "swapping"):
        refused = await api.get(DEPLOYMENTS, params={"status": old})
        assert refused.status_code == 422 and locs(refused) == [("query", "status")]

    await activities.finish_swap(
        SwapRecordInput(deployment_id=deployment["id"], swap_id="s1", status="rolled_back")
    )
    assert (await api.get(url)).json()["swap"] is None

    # A client waiting on a deployment whose workload errors gives up with the reason (a new
    # generation: one that ran never goes back to `initializing`).
    await workload_is(workload, "initializing", generation=2)
    seen = []
    waiting = asyncio.create_task(wait_for_running(api, url, seen))
    await asyncio.sleep(0.3)
    await workload_is(workload, "errored", "replica default-0 exited with code 1", generation=2)
    reason = rf"workload {workload} is errored: replica default-0 exited"
    with pytest.raises(RuntimeError, match=reason):
        await asyncio.wait_for(waiting, 60)
    assert seen == ["initializing", "errored"]
    # Our own typed client fails its wait as fast.
    transport = httpx.ASGITransport(app=live_app)
    async with AsyncClient("http://testserver", ADMIN_KEY, transport=transport) as wapi:
        with pytest.raises(WaitFailedError, match="it is errored: workload"):
            await wapi.deployments.wait_until(deployment["id"], timeout=30, interval=0.05)
    errored = (await api.get(DEPLOYMENTS, params={"status": "errored"})).json()["data"]
    assert [d["id"] for d in errored] == [deployment["id"]]
    for order in ("status", "-status", "healthStatus", "-healthStatus"):
        ordered = await api.get(DEPLOYMENTS, params={"orderBy": order})
        assert ordered.status_code == 200 and ordered.json()["totalCount"] == 1, ordered.text
    await workload_is(workload, "stopping", generation=2)
    assert (await api.get(url)).json()["status"] == "stopped"
