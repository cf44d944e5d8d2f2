"""Histories stay bounded: the workload workflow continues as new and keeps its whole state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.e2e.conftest import WORKLOADS, eventually, open_stack
from tests.support.fixtures_temporal import dev_server_args, start_dev_server
from workflows import search_attributes as attributes

THRESHOLD = 40


async def indexed_status(handle: WorkflowHandle[Any, Any]) -> tuple[str | None, str | None]:
    found = (await handle.describe()).typed_search_attributes
    return found.get(attributes.WORKLOAD_ID), found.get(attributes.STATUS)


@pytest.fixture
async def low_threshold_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server(
        dev_server_args(
            "--dynamic-config-value", f"limit.historyCount.suggestContinueAsNew={THRESHOLD}"
        )
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def test_continues_as_new_and_keeps_state(
    tmp_path: Path,
    low_threshold_env: WorkflowEnvironment,
    docker_url: str,
    test_image: str,
    task_queue: str,
) -> None:
    async with open_stack(
        tmp_path, low_threshold_env.client, docker_url, test_image, task_queue
    ) as stack:
        wid = (await stack.create())["id"]
        handle = stack.temporal.get_workflow_handle(f"workload-{wid}")
        first_run = (await handle.describe()).run_id
        for _ in range(3):  # each stop/start cycle adds about 20 events
            await stack.wait_status(wid, "running")
            assert (await stack.api.post(f"{WORKLOADS}{wid}/stop/")).status_code == 202
            await stack.wait_status(wid, "stopped")
            assert (await stack.api.post(f"{WORKLOADS}{wid}/start/")).status_code == 202
        running = await stack.wait_status(wid, "running")

        description = await handle.describe()
        assert description.run_id != first_run
        old = stack.temporal.get_workflow_handle(f"workload-{wid}", run_id=first_run)
        last_event = [event async for event in old.fetch_history_events()][-1]
        assert last_event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        assert (
            description.history_length is not None and description.history_length <= 2 * THRESHOLD
        )
        # The state crossed over: the generation kept counting and the workload still serves.
        assert running["generation"] == 4
        state = await handle.query("current")
        assert state["generation"] == 4 and state["status"] == "running"
        # So did the search attributes, and they are still kept current (the workflow sets
        # them just after the catalog records the status, so eventually).
        await eventually(
            lambda: indexed_status(handle), lambda found: found == (wid, "running"), 30, "running"
        )
        assert (
            await stack.invoke.get(f"/api/v2/endpoints/workloads/{wid}/healthz")
        ).status_code == 200
        # And it still obeys: a stop after continue-as-new works.
        assert (await stack.api.post(f"{WORKLOADS}{wid}/stop/")).status_code == 202
        await stack.wait_status(wid, "stopped")
        await eventually(
            lambda: indexed_status(handle), lambda found: found[1] == "stopped", 30, "stopped"
        )
