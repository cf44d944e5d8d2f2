"""Record real workload histories and replay them against the current workflow code.

`WAPI_UPDATE_HISTORIES=1` also saves them under tests/histories/, where `tests/test_replay.py`
replays every saved history on every run: a workflow change that is not guarded with
`workflow.patched` fails there.
"""

from __future__ import annotations

import os
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.e2e.conftest import WORKLOADS, Stack
from tests.e2e.test_workload_lifecycle import READY
from workload_api.workflows.workload import WorkloadWorkflow

HISTORIES = Path(__file__).parents[1] / "histories" / "workload"


async def keep(stack: Stack, workload_id: str, name: str) -> WorkflowHistory:
    history = await stack.temporal.get_workflow_handle(f"workload-{workload_id}").fetch_history()
    if os.environ.get("WAPI_UPDATE_HISTORIES"):
        HISTORIES.mkdir(parents=True, exist_ok=True)
        (HISTORIES / f"{name}.json").write_text(history.to_json())
    return history


async def test_live_histories_replay(stack: Stack) -> None:
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

    histories = [
        await keep(stack, lifecycle, "lifecycle"),
        await keep(stack, crashing, "crash_loop"),
    ]
    replayer = Replayer(workflows=[WorkloadWorkflow], data_converter=pydantic_data_converter)
    for history in histories:
        await replayer.replay_workflow(history)
