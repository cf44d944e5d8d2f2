"""The replacement workflow on the Temporal dev server, with stand-in activities under the
contract's names that record what it asks for: the new version's weights in order, then all
calls to it, the workload restarted on the new artifact, the calls handed back and the
candidate removed; a cancel before the hand-over puts every call back on the old version; a
failed analysis ends it `errored` with its figures; one replacement of a workload at a time.
Histories replay here, and with `WAPI_UPDATE_HISTORIES=1` are saved under
tests/histories/replacement/ for tests/test_replay.py. (On real containers through the
gateway: tests/e2e/test_replacement.py.)"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer, Worker

from models.rollouts import AnalysisStep, PauseStep, RolloutStep
from workflows import deployment_contract as dc
from workflows import replacement_contract as rc
from workflows.replacement import ReplacementWorkflow

HISTORIES = Path(__file__).parent / "histories" / "replacement"


@dataclass
class Fakes:
    records: list[rc.ReplacementRecordInput] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # starts, restarts and deletions, in order
    analysis: dc.AnalyzeResult = field(
        default_factory=lambda: dc.AnalyzeResult(passed=True, summary="fine")
    )

    @activity.defn(name=rc.ACTIVITY_RECORD)
    async def record(self, input: rc.ReplacementRecordInput) -> None:
        self.records.append(input)

    @activity.defn(name=dc.ACTIVITY_ENSURE_WORKLOAD_STARTED)
    async def ensure_workload_started(
        self, input: dc.WorkloadTargetInput
    ) -> dc.EnsureStartedResult:
        self.calls.append(f"start {input.workload_id}")
        return dc.EnsureStartedResult(started=True)

    @activity.defn(name=dc.ACTIVITY_WAIT_RUNNING)
    async def wait_running(self, input: dc.WaitRunningInput) -> dc.WaitRunningResult:
        return dc.WaitRunningResult(running=True)

    @activity.defn(name=dc.ACTIVITY_ANALYZE_ROLLOUT)
    async def analyze(self, input: dc.AnalyzeInput) -> dc.AnalyzeResult:
        assert input.candidate_workload_id == "new" and input.stable_workload_id.startswith("w-")
        return self.analysis

    @activity.defn(name=rc.ACTIVITY_RESTART_ON_ARTIFACT)
    async def restart(self, input: rc.RestartInput) -> None:
        self.calls.append(f"restart {input.workload_id} on {input.artifact_id}")

    @activity.defn(name=rc.ACTIVITY_DELETE_WORKLOAD)
    async def delete(self, input: dc.WorkloadTargetInput) -> None:
        self.calls.append(f"delete {input.workload_id}")

    def trail(self) -> list[tuple[str, str, int | None, int]]:
        return [(r.event, r.status, r.step, r.weight) for r in self.records]


@pytest.fixture
async def fakes(temporal_client: Client, task_queue: str) -> AsyncIterator[Fakes]:
    fakes = Fakes()
    short: list[Callable[..., Any]] = [
        fakes.record,
        fakes.ensure_workload_started,
        fakes.wait_running,
        fakes.analyze,
        fakes.restart,
        fakes.delete,
    ]
    async with Worker(
        temporal_client, task_queue=task_queue, workflows=[ReplacementWorkflow], activities=short
    ):
        yield fakes


def state(steps: list[RolloutStep], workload_id: str) -> rc.ReplacementState:
    return rc.ReplacementState(
        replacement_id=uuid.uuid4().hex[:24],
        workload_id=workload_id,
        candidate="new",
        artifact_id="v2",
        steps=steps,
        warmup_seconds=1,
        keep_old_seconds=0,
        ready_timeout_seconds=60,
        actor="alice",
    )


async def start(
    client: Client, task_queue: str, steps: list[RolloutStep]
) -> WorkflowHandle[Any, Any]:
    workload_id = f"w-{uuid.uuid4().hex[:8]}"
    return await client.start_workflow(
        rc.WORKFLOW_TYPE,
        rc.ReplacementInput(state=state(steps, workload_id)),
        id=rc.replacement_workflow_id(workload_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        result_type=rc.ReplacementView,
    )


async def until(check: Callable[[], bool], within: float = 60) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110  # state of another task: polled
            await asyncio.sleep(0.2)


async def keep(handle: WorkflowHandle[Any, Any], name: str) -> None:
    history = await handle.fetch_history()
    if os.environ.get("WAPI_UPDATE_HISTORIES"):
        HISTORIES.mkdir(parents=True, exist_ok=True)
        (HISTORIES / f"{name}.json").write_text(history.to_json())
    replayer = Replayer(workflows=[ReplacementWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


async def test_steps_then_all_calls_then_the_workload_restarts_and_the_candidate_goes(
    fakes: Fakes, temporal_client: Client, task_queue: str
) -> None:
    steps = [
        RolloutStep(set_weight=50),
        RolloutStep(pause=PauseStep(duration_seconds=1)),
        RolloutStep(analysis=AnalysisStep(duration_seconds=10, max_error_rate=0.01)),
    ]
    handle = await start(temporal_client, task_queue, steps)
    workload_id = (
        await handle.query(rc.QUERY_CURRENT, result_type=rc.ReplacementState)
    ).workload_id
    with pytest.raises(WorkflowAlreadyStartedError):  # one replacement of a workload at a time
        await start_again(temporal_client, task_queue, workload_id)
    view = await handle.result()
    assert (view.status, view.weight) == ("completed", 0)
    assert fakes.trail() == [
        ("warming_up", "initializing", None, 0),
        ("candidate_running", "progressing", None, 0),
        ("weight_set", "progressing", 0, 50),
        ("pause_started", "progressing", 1, 50),
        ("analysis_started", "progressing", 2, 50),
        ("analysis_passed", "progressing", 2, 50),
        ("switched", "finalizing", None, 100),
        ("workload_restarted", "finalizing", None, 100),
        ("handed_back", "finalizing", None, 0),
        ("completed", "completed", None, 0),
    ]
    assert fakes.records[6].switched
    assert fakes.calls == ["start new", f"restart {workload_id} on v2", "delete new"]
    await keep(handle, "steps_handed_back")


async def start_again(client: Client, task_queue: str, workload_id: str) -> None:
    await client.start_workflow(
        rc.WORKFLOW_TYPE,
        rc.ReplacementInput(state=state([], workload_id)),
        id=rc.replacement_workflow_id(workload_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )


async def test_a_cancel_puts_every_call_back_and_removes_the_candidate(
    fakes: Fakes, temporal_client: Client, task_queue: str
) -> None:
    steps = [RolloutStep(set_weight=50), RolloutStep(pause=PauseStep(duration_seconds=86400))]
    handle = await start(temporal_client, task_queue, steps)
    await until(lambda: bool(fakes.records) and fakes.records[-1].event == "pause_started")
    view = await handle.execute_update(
        rc.UPDATE_CANCEL, rc.CancelInput(actor="bob"), result_type=rc.ReplacementView
    )
    assert (view.status, view.weight) == ("cancelled", 0)
    assert fakes.trail()[-2:] == [
        ("aborted", "progressing", 1, 0),
        ("cancelled", "cancelled", 1, 0),
    ]
    assert fakes.records[-1].reason == "cancelled by bob"
    assert fakes.calls == ["start new", "delete new"]  # the workload itself was not touched
    with pytest.raises(RPCError) as gone:  # over: the API answers 404 from the catalog
        await handle.execute_update(rc.UPDATE_CANCEL, rc.CancelInput(actor="bob"))
    assert gone.value.status == RPCStatusCode.NOT_FOUND
    await keep(handle, "cancelled_mid_pause")


async def test_a_failed_analysis_ends_it_errored_with_the_figures(
    fakes: Fakes, temporal_client: Client, task_queue: str
) -> None:
    fakes.analysis = dc.AnalyzeResult(passed=False, summary="error rate 33% > maxErrorRate 1%")
    steps = [
        RolloutStep(set_weight=50),
        RolloutStep(analysis=AnalysisStep(duration_seconds=10, max_error_rate=0.01)),
    ]
    handle = await start(temporal_client, task_queue, steps)
    view = await handle.result()
    assert (view.status, view.weight) == ("errored", 0)
    last = fakes.records[-1]
    assert last.reason == "step 1: analysis failed: error rate 33% > maxErrorRate 1%"
    assert last.actor == "system" and fakes.records[-2].actor == "analysis"
    assert fakes.calls == ["start new", "delete new"]
