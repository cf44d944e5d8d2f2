"""Operators find workflows in Temporal's visibility by what they are about: the Wapi* search
attributes, set at start and kept current on every transition, on the real dev server; and a
server without them registered still runs everything with the setting turned off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from tests.e2e.conftest import WORKLOADS, Stack, eventually, open_stack
from tests.e2e.test_deployments import DEPLOYMENTS, deploy, running_workload, swap_status
from tests.support.fixtures_temporal import start_dev_server
from workflows import search_attributes as attributes


async def workflow_ids(client: Client, query: str) -> list[str]:
    return sorted([w.id async for w in client.list_workflows(query)])


async def found_by(client: Client, query: str, expected: list[str], what: str) -> None:
    """Visibility is eventually consistent: wait (generously) until the query finds them."""
    await eventually(lambda: workflow_ids(client, query), lambda ids: ids == expected, 60, what)


async def test_workflows_are_found_by_their_search_attributes(stack: Stack) -> None:
    client = stack.temporal
    crashing = await stack.create(name="crashy", command=["crash"])
    await stack.wait_status(crashing["id"], "errored")
    artifact = crashing["artifact"]["id"]
    await found_by(
        client,
        f"WapiStatus = 'errored' AND WapiArtifactId = '{artifact}'",
        [f"workload-{crashing['id']}"],
        "the errored workload of its artifact",
    )
    await found_by(
        client,
        f"WapiName = 'crashy' AND WapiOwner = 'admin' AND WapiWorkloadId = '{crashing['id']}'",
        [f"workload-{crashing['id']}"],
        "the workload by name, owner and id",
    )
    description = await client.get_workflow_handle(f"workload-{crashing['id']}").describe()
    assert await description.static_summary() == "workload crashy"
    assert artifact in (await description.static_details() or "")

    v1, collection = await running_workload(stack, "1")
    v2, _ = await running_workload(stack, "2", collection)
    did = (await deploy(stack, v1))["id"]
    deployment = f"deployment-{did}"
    await found_by(
        client,
        f"WapiDeploymentId = '{did}' AND WapiWorkloadId = '{v1}' AND WapiStatus = 'healthy'",
        [deployment],
        "the healthy deployment serving v1",
    )
    swap = await stack.api.post(f"{DEPLOYMENTS}{did}/swap/", json={"workloadId": v2})
    assert swap.status_code == 202, swap.text
    await eventually(lambda: swap_status(stack, did), lambda s: s == "completed", 90, "swap")
    # A workload id finds its workflow and the deployment that serves it.
    await found_by(
        client,
        f"WapiWorkloadId = '{v2}' AND WapiSwapStatus = 'completed'",
        [deployment],
        "the deployment now serving v2",
    )
    await found_by(
        client,
        f"WapiWorkloadId = '{v2}'",
        sorted([deployment, f"workload-{v2}"]),
        "both workflows of v2",
    )
    await found_by(
        client, f"WapiWorkloadId = '{v1}' AND WapiStatus = 'stopped'", [f"workload-{v1}"], "v1"
    )
    await found_by(
        client,
        f"WapiCollectionId = '{collection}'",
        sorted([f"workload-{v1}", f"workload-{v2}"]),
        "the workloads of the collection's versions",
    )


@pytest.fixture
async def plain_server() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server where no Wapi* attribute is registered (as a cluster may be)."""
    env = await start_dev_server(
        ["--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true"]
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def test_turned_off_for_a_server_without_them(
    tmp_path: Path,
    plain_server: WorkflowEnvironment,
    docker_url: str,
    test_image: str,
    task_queue: str,
) -> None:
    async with open_stack(
        tmp_path,
        plain_server.client,
        docker_url,
        test_image,
        task_queue,
        temporal_search_attributes=False,
    ) as stack:
        workload = (await stack.create())["id"]
        await stack.wait_status(workload, "running")
        assert (await stack.api.post(f"{WORKLOADS}{workload}/stop/")).status_code == 202
        await stack.wait_status(workload, "stopped")
        handle = stack.temporal.get_workflow_handle(f"workload-{workload}")
        described = await handle.describe()
        names = {pair.key.name for pair in described.typed_search_attributes}
        assert names.isdisjoint(key.name for key in attributes.ALL)
        with pytest.raises(RPCError, match="WapiStatus"):  # this server does not know them
            await workflow_ids(stack.temporal, "WapiStatus = 'running'")

    # Left on against such a server, a create is refused whole (503), not half-written.
    async with open_stack(
        tmp_path / "on", plain_server.client, docker_url, test_image, task_queue
    ) as stack:
        body = {"name": "w", "artifact": {"spec": {"containerGroups": [{"containers": [
            stack.container()
        ]}]}}}  # fmt: skip
        refused = await stack.api.post(WORKLOADS, json=body)
        # The server names the first unregistered attribute it meets, in no fixed order.
        assert refused.status_code == 503, refused.text
        assert "no mapping defined for search attribute Wapi" in refused.text, refused.text
        assert (await stack.api.get(WORKLOADS)).json()["totalCount"] == 0
        artifacts = await stack.api.get("/api/v2/registry/artifacts/")
        assert artifacts.json()["totalCount"] == 0  # nor its inline artifact
