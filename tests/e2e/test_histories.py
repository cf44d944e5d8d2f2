"""Record real workload and deployment histories and replay them against the current code.

`WAPI_UPDATE_HISTORIES=1` also saves them under tests/histories/<workflow>/, where
`tests/test_replay.py` replays every saved history on every run: a workflow change that is
not guarded with `workflow.patched` fails there.
"""

from __future__ import annotations

from temporalio.client import WorkflowHistory

from tests.e2e.conftest import WORKLOADS, Stack, eventually
from tests.e2e.test_deployments import DEPLOYMENTS, deploy, running_workload, swap_status
from tests.e2e.test_workload_lifecycle import READY
from tests.support import histories
from tests.support.histories import replay


async def keep(stack: Stack, workflow_id: str, kind: str, name: str) -> WorkflowHistory:
    history = await stack.temporal.get_workflow_handle(workflow_id).fetch_history()
    return histories.keep(history, kind, name)


async def test_workload_histories_replay(stack: Stack) -> None:
    lifecycle = (await stack.create(readinessProbe=READY))["id"]
    await stack.wait_status(lifecycle, "running")
    await stack.api.patch(
        f"{WORKLOADS}{lifecycle}/", json={"runtime": {"containerGroups": [{"replicaCount": 2}]}}
    )
    await stack.api.post(f"{WORKLOADS}{lifecycle}/stop/")
    await stack.wait_status(lifecycle, "stopped")
    await stack.api.post(f"{WORKLOADS}{lifecycle}/start/")
    await stack.wait_status(lifecycle, "running")
    assert (await stack.api.delete(f"{WORKLOADS}{lifecycle}/")).status_code == 204

    crashing = (await stack.create(name="crash", command=["crash"]))["id"]
    await stack.wait_status(crashing, "errored")
    await stack.api.post(f"{WORKLOADS}{crashing}/stop/")
    await stack.wait_status(crashing, "stopped")

    await replay(await keep(stack, f"workload-{lifecycle}", "workload", "lifecycle"))
    await replay(await keep(stack, f"workload-{crashing}", "workload", "crash_loop"))


async def test_deployment_history_replays(stack: Stack) -> None:
    v1, collection = await running_workload(stack, "1")
    v2, _ = await running_workload(stack, "2", collection)
    did = (await deploy(stack, v1))["id"]
    await stack.api.post(f"{DEPLOYMENTS}{did}/swap/", json={"workloadId": v2})
    await eventually(lambda: swap_status(stack, did), lambda s: s == "completed", 90, "swap")
    broken = await stack.registered(
        "broken", collection, command=["never-ready"], readinessProbe=READY
    )
    candidate = await stack.workload_of(broken["id"], name="broken")
    await stack.api.post(
        f"{DEPLOYMENTS}{did}/swap/", json={"workloadId": candidate, "readyTimeoutSeconds": 3}
    )
    await eventually(lambda: swap_status(stack, did), lambda s: s == "rolled_back", 60, "rollback")
    assert (await stack.api.delete(f"{DEPLOYMENTS}{did}/")).status_code == 204

    await replay(await keep(stack, f"deployment-{did}", "deployment", "swap_rollback_delete"))
