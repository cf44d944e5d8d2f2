"""The hostile editor, viewer and anonymous caller of issue 9, one test per thing they did.

Each test replays what was observed on a stack whose allowed calls succeed (real Temporal,
worker, Podman and gateway; see governed_stack) and checks that it no longer works. The admin
owns everything to begin with; `mallory` holds an editor key, `victor` a viewer key, and
neither has a role on anything until a test shares something with them.

The gateway's own hygiene (forwarded headers, encoded paths, connection limits) belongs to
the gateway's tests; here the gateway is only asked who may invoke what.

Why one module of this length: the issue's list of attacks reads as one list.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiodocker
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.settings import Settings
from models.spec import ArtifactSpec
from models.workloads import WorkloadRuntime
from runtimes.local.naming import network_name
from services.workload_runtime import build_plan
from tests.conftest import ADMIN_KEY
from tests.support.gateway import gateway_in_loop
from tests.support.governed_stack import GovernedStack, governed_stack
from tests.support.live_server import serve

A = "/api/v2/registry/artifacts/"
W = "/api/v2/console/workloads/"
D = "/api/v2/console/deployments/"
S = "/api/v2/secrets/"
MIB = 2**20


@pytest.fixture
async def stack(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    docker_url: str,
    test_image: str,
) -> AsyncIterator[GovernedStack]:
    async with governed_stack(
        settings, temporal_env.client, task_queue, docker_url, test_image
    ) as stack:
        await stack.key("mallory", "editor")
        await stack.key("victor", "viewer")
        yield stack


Records = list[dict[str, Any]]


async def audited(
    stack: GovernedStack, until: Callable[[Records], bool] = bool, **filters: str
) -> Records:
    """Audit records matching `filters`, oldest first, once `until` holds of them (waiting
    up to 10 s: invocations are written in batches)."""
    deadline = time.monotonic() + 10
    while True:
        params: dict[str, str | int] = {**filters, "orderBy": "seq", "limit": 100}
        page = await stack.admin.get("/api/v2/auditEvents/", params=params)
        data: Records = page.json()["data"]
        if until(data) or time.monotonic() > deadline:
            return data
        await asyncio.sleep(0.2)


async def eventually_status(client: httpx.AsyncClient, url: str, status: int) -> bool:
    """Whether `url` answers `status` within 3 s (a change takes up to a second to reach
    every gateway)."""
    deadline = time.monotonic() + 3
    while (await client.get(url)).status_code != status:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def share(stack: GovernedStack, path: str, username: str, role: str) -> None:
    answer = await stack.admin.patch(
        f"{path}sharedRoles/", json={"roles": [{"username": username, "role": role}]}
    )
    assert answer.status_code == 204, answer.text


async def test_a_viewer_cannot_reach_the_workload_behind_a_deployment(
    stack: GovernedStack,
) -> None:
    deployment = await stack.deployment()
    workload = f"{W}{deployment.workload_id}/"
    invoke = f"/api/v2/endpoints/workloads/{deployment.workload_id}/hello"
    async with stack.client("victor") as victor:
        listed = (await victor.get(W)).json()
        assert deployment.workload_id not in [item["id"] for item in listed["data"]]
        assert (await victor.get(invoke)).status_code == 403
        assert (await victor.get(f"{workload}logs/")).status_code == 404
        # A consumer of the deployment invokes the deployment, not the workload behind it.
        await share(stack, f"{D}{deployment.id}/", "victor", "consumer")
        assert (await victor.get(invoke)).status_code == 403
        via_deployment = f"/api/v2/endpoints/deployments/{deployment.id}/hello"
        assert (await victor.get(via_deployment)).status_code == 200
        # A user of the deployment may read and call what serves it (gateways remember a
        # role lookup for half a second).
        await share(stack, f"{D}{deployment.id}/", "victor", "user")
        assert await eventually_status(victor, invoke, 200)
        assert (await victor.get(f"{workload}logs/")).status_code == 200
    records = await audited(
        stack,
        lambda records: bool(records) and records[-1]["statusCode"] == 200,
        action="workload.invoke",
        resourceId=deployment.workload_id,
    )
    # A record lists the calls of one caller, target, method and status (docs/audit.md).
    calls = [
        (r["actor"], r["statusCode"], r["summary"]["method"], call[2])
        for r in records
        for call in r["summary"]["calls"]
    ]
    assert calls[:2] == [("victor", 403, "GET", "/hello")] * 2
    assert calls[-1] == ("victor", 200, "GET", "/hello")


async def test_an_editor_cannot_change_stop_or_start_a_workload_not_shared_with_them(
    stack: GovernedStack,
) -> None:
    running = await stack.workload(status="submitted")
    deployment = await stack.deployment(running.id)
    url = f"{W}{running.id}/"
    proxy = {
        "runtime": {
            "containerGroups": [
                {
                    "containers": [
                        {"name": "main", "environmentVars": [{"name": "HTTPS_PROXY", "value": "x"}]}
                    ]
                }
            ]
        }
    }
    async with stack.client("mallory") as mallory:
        for answer in (
            await mallory.patch(url, json=proxy),
            await mallory.post(f"{url}stop/"),
            await mallory.post(f"{url}start/"),
            await mallory.delete(url),
        ):
            assert answer.status_code == 404, answer.text
        # Owning the deployment makes her a user of the workload: she reads it, never edits it.
        await share(stack, f"{D}{deployment.id}/", "mallory", "owner")
        assert (await mallory.get(url)).status_code == 200
        assert (await mallory.patch(url, json=proxy)).status_code == 403
        assert (await mallory.post(f"{url}stop/")).status_code == 403
    shown = (await stack.admin.get(url)).json()
    assert (
        shown["runtime"]["containerGroups"][0]["containers"] == []
        and shown["status"] == "submitted"
    )


async def test_an_editor_can_neither_rotate_nor_use_a_secret_not_shared_with_them(
    stack: GovernedStack,
) -> None:
    secret = await stack.secret()
    env = [{"name": "TOKEN", "source": "secret", "secretId": secret.id}]
    # The admin's registered artifact uses the secret, and is shared with Mallory to run.
    holder = await stack.artifact(registered=True, environmentVars=env)
    await share(stack, f"{A}{holder.id}/", "mallory", "consumer")
    rotate = f"{S}{secret.id}/rotate/"
    override = {"name": "main", "environmentVars": env}
    inline = {
        "name": "w",
        "artifact": {"spec": stack.spec()},
        "runtime": {"containerGroups": [{"containers": [override]}]},
    }
    async with stack.client("mallory") as mallory:
        assert (await mallory.post(rotate, json={"value": "mine"})).status_code == 404
        assert (await mallory.delete(f"{S}{secret.id}/")).status_code == 404
        own = await mallory.post(A, json={"name": "x", "spec": stack.spec(environmentVars=env)})
        assert own.status_code == 422
        [problem] = own.json()["detail"]
        assert problem["loc"][-1] == "secretId" and "not shared with you" in problem["msg"]
        assert (await mallory.post(W, json=inline)).status_code == 422
        run = await mallory.post(W, json={"name": "w", "artifactId": holder.id})
        assert run.status_code == 403 and secret.id in run.text
        # Even with the artifact readable, a clone would carry the reference away.
        await share(stack, f"{A}{holder.id}/", "mallory", "user")
        assert (await mallory.post(f"{A}{holder.id}/clone/")).status_code == 403
        # Shared as consumer, the secret may be used, still not rotated.
        await share(stack, f"{S}{secret.id}/", "mallory", "consumer")
        run = await mallory.post(W, json={"name": "w", "artifactId": holder.id})
        assert run.status_code == 201, run.text
        assert (await mallory.post(rotate, json={"value": "mine"})).status_code == 403
    await stack.settle()


async def test_a_viewer_cannot_read_the_logs_of_a_workload_not_shared_with_them(
    stack: GovernedStack,
) -> None:
    workload = await stack.workload()
    async with stack.client("victor") as victor:
        assert (await victor.get(f"{W}{workload.id}/logs/")).status_code == 404
        assert (await victor.get(f"{W}{workload.id}/events/")).status_code == 404


async def test_an_editor_cannot_register_into_a_collection_they_do_not_own(
    stack: GovernedStack,
) -> None:
    released = await stack.artifact(registered=True)
    collection = released.collection_id
    assert collection is not None
    body = {"name": "v2", "status": "registered", "collectionId": collection, "spec": stack.spec()}
    async with stack.client("mallory") as mallory:
        refused = await mallory.post(A, json=body)
        assert refused.status_code == 422  # not shared: it does not exist for her
        assert refused.json()["detail"][0]["loc"] == ["body", "collectionId"]
        await share(stack, f"/api/v2/registry/artifactCollections/{collection}/", "mallory", "user")
        assert (await mallory.post(A, json=body)).status_code == 403
        draft = (await mallory.post(A, json={**body, "status": "draft"})).json()
        register = await mallory.patch(f"{A}{draft['id']}/", json={"status": "registered"})
        assert register.status_code == 403
    versions = await stack.admin.get(f"/api/v2/registry/artifactCollections/{collection}/versions/")
    assert versions.json()["totalCount"] == 1


async def test_limits_apply_whatever_the_request_says(
    stack: GovernedStack, docker_url: str
) -> None:
    one_core = {"resourceBundles": ["cpu.small"]}
    for allocation in ({"memory": "0.5"}, {"cpu": 512, "memory": "900Ti"}):
        override = {"name": "main", "resourceAllocation": allocation}
        runtime = {"containerGroups": [{**one_core, "containers": [override]}]}
        body = {"name": "w", "artifact": {"spec": stack.spec()}, "runtime": runtime}
        assert (await stack.admin.post(W, json=body)).status_code == 422
    # No bundle, a sidecar with no allocation: every container still runs limited.
    spec = stack.spec(command=["serve"])
    spec["containerGroups"][0]["containers"][0]["primary"] = True
    spec["containerGroups"][0]["containers"].append(
        {"name": "sidecar", "imageUri": stack.image, "command": ["sleep", "3600"]}
    )
    made = await stack.admin.post(W, json={"name": "w", "artifact": {"spec": spec}})
    assert made.status_code == 201, made.text
    workload_id = made.json()["id"]
    deadline = time.monotonic() + 60
    async with aiodocker.Docker(url=docker_url) as docker:
        while True:
            rows = await docker.containers.list(
                all=True, filters={"label": [f"workload-api.workload={workload_id}"]}
            )
            if len(rows) == 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        assert len(rows) == 2
        default = stack.app.state.context.bundles.default
        for row in rows:
            info = await row.show()
            host = info["HostConfig"]
            assert host["Memory"] == default.memory_bytes
            assert host["NanoCpus"] == int(default.cpu_count * 1e9)
            assert host["PidsLimit"] == stack.settings.container_pids_limit
            assert "no-new-privileges" in host["SecurityOpt"] and not host.get("CapAdd")
            networks = set(info["NetworkSettings"]["Networks"] or {})
            assert networks <= {network_name(workload_id)}  # the sidecar shares the primary's
    await stack.settle()


async def test_a_spec_too_large_for_a_run_plan_is_refused(stack: GovernedStack) -> None:
    huge = [{"name": f"V{i}", "value": "x" * 32000} for i in range(100)]  # 3.2 MB
    answer = await stack.admin.post(
        A, json={"name": "huge", "spec": stack.spec(environmentVars=huge)}
    )
    assert answer.status_code == 413
    large = huge[:10]  # 320 KB: within the body limit, over the spec limit
    answer = await stack.admin.post(
        A, json={"name": "big", "spec": stack.spec(environmentVars=large)}
    )
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "spec"]
    # The largest spec that gets through makes a run plan far under Temporal's 2 MB limit
    # (and under the 512 KB at which it starts to warn).
    largest = huge[:7]
    answer = await stack.admin.post(
        A, json={"name": "ok", "spec": stack.spec(environmentVars=largest)}
    )
    assert answer.status_code == 201, answer.text
    plan = build_plan(
        "w", 1, ArtifactSpec.model_validate(answer.json()["spec"]), WorkloadRuntime(),
        stack.app.state.context.bundles,
    )  # fmt: skip
    assert len(plan.model_dump_json()) < 512 * 1024


async def test_a_huge_declared_body_is_refused_before_it_is_sent(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    """A bad key and a declared 100 MiB body: the answer comes without a byte of it."""
    with serve(create_app(settings, temporal_client=temporal_env.client)) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /api/v2/registry/artifacts/ HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer wapi_not-a-key\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {100 * MIB}\r\n\r\n".encode()
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout=10)
        writer.close()
        assert status.startswith(b"HTTP/1.1 413")
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as admin:
            latest = await admin.get("/api/v2/auditEvents/", params={"orderBy": "-seq", "limit": 1})
    [record] = latest.json()["data"]
    assert (record["action"], record["statusCode"]) == ("artifact.create", 413)


async def test_deep_or_broken_json_is_a_4xx_and_audited(stack: GovernedStack) -> None:
    deep = '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}"
    async with stack.client("mallory") as mallory:
        answers = [
            await mallory.post(A, content=deep, headers={"Content-Type": "application/json"}),
            await mallory.post(
                A, content='{"name": ', headers={"Content-Type": "application/json"}
            ),
        ]
    assert [answer.status_code for answer in answers] == [400, 422]
    records = await audited(stack, action="artifact.create")
    assert sorted(record["statusCode"] for record in records) == [400, 422]


async def test_an_anonymous_request_leaves_a_small_fixed_record(stack: GovernedStack) -> None:
    chosen = {f"{'field' * 20}{i}": i for i in range(500)}  # ~50 KB of names
    async with stack.client(None) as anonymous:
        assert (await anonymous.post(A, json=chosen)).status_code == 401
        assert (await anonymous.post(f"/api/v2/{'x' * 5000}/", json=chosen)).status_code == 404
    routed, unrouted = sorted(
        await audited(stack, actor="anonymous"), key=lambda record: record["action"]
    )
    assert routed["action"] == "artifact.create" and routed["summary"] == {}
    assert unrouted["action"] == "request.unrouted"
    assert (
        set(unrouted["summary"]) == {"method", "path"} and len(unrouted["summary"]["path"]) <= 200
    )
    for record in (routed, unrouted):
        assert len(json.dumps(record)) < 1024


async def test_metrics_show_deployment_ids_only_to_admins(stack: GovernedStack) -> None:
    deployment = await stack.deployment()
    assert (
        await stack.admin.get(f"/api/v2/endpoints/deployments/{deployment.id}/x")
    ).status_code == 200
    metrics = f"{stack.gateway}/metrics"
    async with httpx.AsyncClient() as http:
        for key in (None, stack.keys["mallory"]):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            text = (await http.get(metrics, headers=headers)).text
            assert "wapi_gateway_requests_total" in text and deployment.id not in text
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        assert deployment.id in (await http.get(metrics, headers=admin)).text
    # The API's /metrics likewise: totals by status for anyone, names and ids for admins.
    for username in (None, "mallory"):
        async with stack.client(username) as caller:
            text = (await caller.get("/metrics")).text
        assert 'wapi_deployments{status="running"}' in text and deployment.id not in text
        assert 'wapi_deployments_health{health="degraded"}' in text
        assert "wapi_workload_status" not in text and "wapi_deployment_health" not in text
    text = (await stack.admin.get("/metrics")).text
    assert f'wapi_deployment_status{{deployment="{deployment.id}"' in text
    assert f'wapi_deployment_health{{deployment="{deployment.id}"' in text
    # An installation may choose to publish them (its /metrics is then for trusted eyes).
    settings = stack.settings.model_copy(update={"metrics_deployment_labels": True})
    async with gateway_in_loop(settings) as public, httpx.AsyncClient() as http:
        call = f"{public.url}/api/v2/endpoints/deployments/{deployment.id}/x"
        assert (await http.get(call, headers=admin)).status_code == 200
        assert deployment.id in (await http.get(f"{public.url}/metrics")).text
