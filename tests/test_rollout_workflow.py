"""The rollout steps of the real deployment workflow on the Temporal dev server, with stand-in
activities under the contract's names that record what the workflow asks for: weights in
order, pauses until promoted, controls refused (409) in the wrong state, an analysis that
fails aborting with its figures, and the search attributes that show the step and weight.
Their histories (one taken mid-pause) replay against the workflow code here, and with
`WAPI_UPDATE_HISTORIES=1` are saved under tests/histories/deployment/ for tests/test_replay.py.
(On real containers through the gateway: tests/e2e/test_rollouts.py.)"""

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
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer, Worker

from models.rollouts import AnalysisStep, PauseStep, RolloutStep
from workflows import deployment_contract as dc
from workflows import search_attributes as sa
from workflows.common import INVALID_TRANSITION, supervision_queue
from workflows.deployment import DeploymentWorkflow

HISTORIES = Path(__file__).parent / "histories" / "deployment"


@dataclass
class Fakes:
    records: list[dc.RolloutRecordInput] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    verdicts: list[dc.HealthVerdict] = field(default_factory=list)  # the monitor reports these
    health: list[str] = field(default_factory=list)  # verdicts the workflow recorded
    swaps: list[str] = field(default_factory=list)  # the swap records, in order
    running: bool = True  # what waiting for the candidate answers
    analysis: dc.AnalyzeResult = field(
        default_factory=lambda: dc.AnalyzeResult(passed=True, summary="fine")
    )

    @activity.defn(name=dc.ACTIVITY_BEGIN_ROLLOUT)
    async def begin_rollout(self, input: dc.BeginRolloutInput) -> None:
        return None

    @activity.defn(name=dc.ACTIVITY_RECORD_ROLLOUT)
    async def record_rollout(self, input: dc.RolloutRecordInput) -> None:
        self.records.append(input)

    @activity.defn(name=dc.ACTIVITY_ANALYZE_ROLLOUT)
    async def analyze_rollout(self, input: dc.AnalyzeInput) -> dc.AnalyzeResult:
        assert input.since <= input.until
        return self.analysis

    @activity.defn(name=dc.ACTIVITY_ENSURE_WORKLOAD_STARTED)
    async def ensure_workload_started(
        self, input: dc.WorkloadTargetInput
    ) -> dc.EnsureStartedResult:
        return dc.EnsureStartedResult(started=True)

    @activity.defn(name=dc.ACTIVITY_WAIT_RUNNING)
    async def wait_running(self, input: dc.WaitRunningInput) -> dc.WaitRunningResult:
        while not self.running:  # until cancelled
            activity.heartbeat()
            await asyncio.sleep(0.2)
        return dc.WaitRunningResult(running=True)

    @activity.defn(name=dc.ACTIVITY_STOP_WORKLOAD)
    async def stop_workload(self, input: dc.WorkloadTargetInput) -> None:
        self.stopped.append(input.workload_id)

    @activity.defn(name=dc.ACTIVITY_RECORD_STATUS)
    async def record_status(self, input: dc.RecordDeploymentInput) -> None:
        self.health.append(f"{input.status} {input.event}")

    @activity.defn(name=dc.ACTIVITY_RECORD_EVENT)
    async def record_event(self, input: dc.DeploymentEventInput) -> None:
        return None

    @activity.defn(name=dc.ACTIVITY_FINISH_SWAP)
    async def finish_swap(self, input: dc.SwapRecordInput) -> None:
        self.swaps.append(f"{input.status} {input.reason}")

    @activity.defn(name=dc.ACTIVITY_BEGIN_SWAP)
    async def begin_swap(self, input: dc.BeginSwapInput) -> None:
        self.swaps.append(f"starting {input.to_workload_id}")

    @activity.defn(name=dc.ACTIVITY_MONITOR)
    async def monitor(self, input: dc.MonitorInput) -> dc.MonitorResult:
        while not self.verdicts:  # nothing to report: until cancelled
            activity.heartbeat()
            await asyncio.sleep(0.2)
        return dc.MonitorResult(status=self.verdicts.pop(0), reason="checked")

    def trail(self) -> list[tuple[str, str, int | None, int]]:
        return [(r.event, r.status, r.step, r.weight) for r in self.records]


@pytest.fixture
async def fakes(temporal_client: Client, task_queue: str) -> AsyncIterator[Fakes]:
    fakes = Fakes()
    short: list[Callable[..., Any]] = [
        fakes.begin_rollout,
        fakes.record_rollout,
        fakes.analyze_rollout,
        fakes.ensure_workload_started,
        fakes.wait_running,
        fakes.stop_workload,
        fakes.record_status,
        fakes.record_event,
        fakes.finish_swap,
        fakes.begin_swap,
    ]
    async with (
        Worker(
            temporal_client,
            task_queue=task_queue,
            workflows=[DeploymentWorkflow],
            activities=short,
        ),
        Worker(
            temporal_client,
            task_queue=supervision_queue(task_queue),
            activities=[fakes.monitor],
        ),
    ):
        yield fakes


async def deployment(client: Client, task_queue: str) -> WorkflowHandle[Any, Any]:
    deployment_id = uuid.uuid4().hex[:24]
    return await client.start_workflow(
        dc.WORKFLOW_TYPE,
        dc.DeploymentInput(deployment_id=deployment_id, workload_id="stable", status="healthy"),
        id=dc.deployment_workflow_id(deployment_id),
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes(
            sa.pairs({sa.DEPLOYMENT_ID: deployment_id, sa.STATUS: "healthy"})
        ),
    )


def rollout(steps: list[RolloutStep], rollout_id: str = "r1") -> dc.RolloutInput:
    return dc.RolloutInput(
        rollout_id=rollout_id,
        workload_id="candidate",
        steps=steps,
        ready_timeout_seconds=60,
        keep_previous_seconds=0,
        actor="alice",
    )


def control(rollout_id: str = "r1", full: bool = False) -> dc.RolloutControlInput:
    return dc.RolloutControlInput(rollout_id=rollout_id, actor="bob", full=full)


async def view(handle: WorkflowHandle[Any, Any]) -> dc.RolloutView:
    found: dc.RolloutView = await handle.query(dc.QUERY_ROLLOUT, result_type=dc.RolloutView)
    return found


async def until(check: Any, within: float = 60) -> None:
    """Poll `check` (a coroutine function) until it is true."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110  # state of another process: polled
            await asyncio.sleep(0.2)


async def keep(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """Replay the history so far against the workflow code; save it when asked to."""
    history = await handle.fetch_history()
    if os.environ.get("WAPI_UPDATE_HISTORIES"):
        (HISTORIES / f"{name}.json").write_text(history.to_json())
    replayer = Replayer(workflows=[DeploymentWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


async def refused(call: Any) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await call
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == INVALID_TRANSITION
    return cause.message


async def test_weights_in_order_pause_until_promoted_then_all_traffic(
    fakes: Fakes, temporal_client: Client, task_queue: str
) -> None:
    handle = await deployment(temporal_client, task_queue)
    steps = [
        RolloutStep(set_weight=10),
        RolloutStep(pause=PauseStep()),
        RolloutStep(set_weight=50),
        RolloutStep(pause=PauseStep(duration_seconds=1)),
    ]
    await handle.execute_update(dc.UPDATE_ROLLOUT, rollout(steps), result_type=dc.RolloutView)

    async def waiting_at_pause() -> bool:
        return (await view(handle)).step == 1 and fakes.trail()[-1][0] == "pause_started"

    await until(waiting_at_pause)
    await keep(handle, "rollout_mid_pause")  # a timer-less wait: nothing more until promoted
    now = await view(handle)
    assert (now.status, now.step_kind, now.weight) == ("progressing", "pause", 10)
    # Only one swap or rollout at a time; the controls answer in the rollout's state.
    swap = dc.SwapInput(
        swap_id="s", workload_id="other", ready_timeout_seconds=1, keep_previous_seconds=0,
        actor="alice",
    )  # fmt: skip
    assert "rollout r1" in await refused(handle.execute_update(dc.UPDATE_SWAP, swap))
    assert "is progressing, not paused" in await refused(
        handle.execute_update(dc.UPDATE_RESUME, control())
    )
    assert "r2 is not in progress" in await refused(
        handle.execute_update(dc.UPDATE_PROMOTE, control("r2"))
    )
    paused = await handle.execute_update(dc.UPDATE_PAUSE, control(), result_type=dc.RolloutView)
    assert paused.status == "paused" and paused.paused_by == "bob"
    assert "already paused" in await refused(handle.execute_update(dc.UPDATE_PAUSE, control()))
    await handle.execute_update(dc.UPDATE_PROMOTE, control(), result_type=dc.RolloutView)

    async def done() -> bool:
        return (await view(handle)).rollout_id is None

    await until(done)
    state = await handle.query(dc.QUERY_CURRENT, result_type=dc.DeploymentState)
    assert state.workload_id == "candidate" and state.rollout is None
    assert fakes.trail() == [
        ("candidate_running", "progressing", 0, 0),
        ("weight_set", "progressing", 0, 10),
        ("pause_started", "progressing", 1, 10),
        ("paused", "paused", 1, 10),
        ("promoted", "progressing", 1, 10),
        ("weight_set", "progressing", 2, 50),
        ("pause_started", "progressing", 3, 50),
        ("rollout_completed", "completed", None, 100),
    ]
    described = await handle.describe()
    attributes = described.typed_search_attributes
    assert attributes.get(sa.ROLLOUT_STATUS) == "completed"
    assert attributes.get(sa.ROLLOUT_WEIGHT) == 100
    assert attributes.get(sa.WORKLOAD_ID) == "candidate"
    # The stable workload is retired once the traffic has settled.
    await until(lambda: _true(fakes.stopped == ["stable"]))
    await keep(handle, "rollout_paused_promoted_completed")


async def test_a_failed_analysis_aborts_with_its_figures_and_stops_the_candidate(
    fakes: Fakes, temporal_client: Client, task_queue: str
) -> None:
    fakes.analysis = dc.AnalyzeResult(passed=False, summary="error rate 30.00% > 5.00%")
    handle = await deployment(temporal_client, task_queue)
    steps = [
        RolloutStep(set_weight=20),
        RolloutStep(analysis=AnalysisStep(duration_seconds=10, max_error_rate=0.05)),
        RolloutStep(set_weight=100),
    ]
    await handle.execute_update(dc.UPDATE_ROLLOUT, rollout(steps), result_type=dc.RolloutView)
    # Promote ends the analysis window at once, skipping it: send none; wait it out instead.

    async def done() -> bool:
        return (await view(handle)).rollout_id is None

    await until(done, within=90)
    last = fakes.records[-1]
    assert (last.event, last.status, last.weight, last.step) == ("rollout_aborted", "aborted", 0, 1)
    assert last.reason == "step 1: analysis failed: error rate 30.00% > 5.00%"
    assert last.actor == "analysis"
    state = await handle.query(dc.QUERY_CURRENT, result_type=dc.DeploymentState)
    assert state.workload_id == "stable"
    await until(lambda: _true(fakes.stopped == ["candidate"]))
    await keep(handle, "rollout_analysis_aborted")


async def test_abort_puts_all_traffic_back_and_answers_once_it_is(
    fakes: Fakes, temporal_client: Client, task_queue: str
) -> None:
    handle = await deployment(temporal_client, task_queue)
    steps = [RolloutStep(set_weight=30), RolloutStep(pause=PauseStep())]
    await handle.execute_update(dc.UPDATE_ROLLOUT, rollout(steps), result_type=dc.RolloutView)

    async def pausing() -> bool:
        return bool(fakes.records) and fakes.records[-1].event == "pause_started"

    await until(pausing)
    await handle.execute_update(dc.UPDATE_ABORT, control(), result_type=dc.RolloutView)
    assert fakes.trail()[-1] == ("rollout_aborted", "aborted", 1, 0)
    assert fakes.records[-1].reason == "aborted by bob"
    assert "not in progress" in await refused(handle.execute_update(dc.UPDATE_ABORT, control()))
    # A new rollout may begin now.
    again = await handle.execute_update(
        dc.UPDATE_ROLLOUT, rollout([], "r2"), result_type=dc.RolloutView
    )
    assert again.rollout_id == "r2"
    await until(lambda: _true(fakes.records[-1].event == "rollout_completed"))
    await keep(handle, "rollout_aborted_then_swap_like")


async def _true(value: bool) -> bool:
    return value


async def test_health_is_still_monitored_while_a_rollout_waits(
    fakes: Fakes, temporal_client: Client, task_queue: str
) -> None:
    handle = await deployment(temporal_client, task_queue)
    steps = [RolloutStep(set_weight=10), RolloutStep(pause=PauseStep())]
    await handle.execute_update(dc.UPDATE_ROLLOUT, rollout(steps), result_type=dc.RolloutView)

    async def pausing() -> bool:
        return bool(fakes.records) and fakes.records[-1].event == "pause_started"

    await until(pausing)
    fakes.verdicts.append("degraded")  # the running monitor reports it
    await until(lambda: _true("degraded status_changed" in fakes.health))
    state = await handle.query(dc.QUERY_CURRENT, result_type=dc.DeploymentState)
    assert state.status == "degraded" and state.rollout is not None
    assert (await view(handle)).step_kind == "pause"  # still waiting for its promotion


def swap(swap_id: str, to: str) -> dc.SwapInput:
    return dc.SwapInput(
        swap_id=swap_id, workload_id=to, ready_timeout_seconds=60, keep_previous_seconds=0,
        actor="alice",
    )  # fmt: skip


async def test_a_swap_is_the_rollout_with_no_steps_recorded_as_a_swap(
    fakes: Fakes, temporal_client: Client, task_queue: str
) -> None:
    handle = await deployment(temporal_client, task_queue)
    await handle.execute_update(
        dc.UPDATE_SWAP, swap("s1", "candidate"), result_type=dc.DeploymentResult
    )

    async def retired() -> bool:
        return fakes.stopped == ["stable"]

    await until(retired)
    state = await handle.query(dc.QUERY_CURRENT, result_type=dc.DeploymentState)
    assert (state.workload_id, state.swap, state.rollout) == ("candidate", None, None)
    assert fakes.records == []  # no rollout row: the swap's own records
    assert "unknown swap_switched" in fakes.health
    await until(lambda: _true(len(fakes.swaps) == 3))
    assert fakes.swaps == [
        "starting candidate",
        "switched traffic moved from stable to candidate",
        "completed workload stable stopped",
    ]
    # One swap or rollout at a time, answered as before; a cancelled swap rolls back and
    # stops the candidate it started.
    fakes.running = False
    await handle.execute_update(
        dc.UPDATE_SWAP, swap("s2", "third"), result_type=dc.DeploymentResult
    )
    assert "swap s2 to workload third is in progress" in await refused(
        handle.execute_update(dc.UPDATE_SWAP, swap("s3", "fourth"))
    )
    assert "swap s2 is in progress" in await refused(
        handle.execute_update(dc.UPDATE_ROLLOUT, rollout([], "r9"))
    )
    assert "s2 is not in progress" in await refused(
        handle.execute_update(dc.UPDATE_PROMOTE, control("s2"))
    )
    await handle.execute_update(
        dc.UPDATE_CANCEL_SWAP, dc.ActorInput(actor="bob"), result_type=dc.DeploymentResult
    )
    assert fakes.swaps[-1] == "cancelled cancelled by bob"
    assert fakes.stopped[-1] == "third"
    state = await handle.query(dc.QUERY_CURRENT, result_type=dc.DeploymentState)
    assert (state.workload_id, state.swap, state.rollout) == ("candidate", None, None)
    await keep(handle, "swap_as_rollout_switched_then_cancelled")
