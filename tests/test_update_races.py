"""Updates that arrive while the entity's lock is held: each has exactly one effect, or is
refused with the 409 error type; none is applied twice or silently overwritten.

The real workflows run on the Temporal dev server; their activities are stand-ins registered
under the same names, so a test can hold one (and with it the workflow's lock) while more
Updates arrive: the interleaving that loses requests is forced, not hoped for. The same
races through the API on real containers are in tests/e2e/test_concurrent_updates.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from models.plan import ContainerPlan, GroupPlan, RunPlan
from tests.support.histories import keep, replay
from workflows import deployment_contract as dc
from workflows import workload_contract as wc
from workflows.common import INVALID_TRANSITION, supervision_queue
from workflows.deployment import DeploymentWorkflow
from workflows.workload import WorkloadWorkflow


def _plan(workload_id: str, generation: int) -> RunPlan:
    main = ContainerPlan(name="main", image="img", primary=True, port=8080)
    group = GroupPlan(name="default", replicas=1, containers=[main])
    return RunPlan(workload_id=workload_id, generation=generation, groups=[group])


@dataclass
class Activities:
    """Stand-ins that record their calls; `hold` makes the next status or scale record wait
    for `release` (the workflow holds its lock meanwhile)."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    own_queue: str = ""  # where a supervision says it may be released, as a worker's
    # Cleared: a supervision of running containers waits before announcing itself.
    may_announce: asyncio.Event = field(default_factory=asyncio.Event)
    supervising: asyncio.Event = field(default_factory=asyncio.Event)
    released: dict[str, asyncio.Event] = field(default_factory=dict)

    # Set: a starting supervision says it wrote `running` itself, as the real one does.
    records_running: bool = False

    def __post_init__(self) -> None:
        self.may_announce.set()

    async def _gate(self) -> None:
        if self.hold.is_set():
            self.hold.clear()
            self.holding.set()
            await self.release.wait()
            self.release.clear()

    @activity.defn(name=wc.ACTIVITY_RECORD_STATUS)
    async def record_status(self, input: wc.RecordStatusInput) -> wc.RecordStatusResult:
        await self._gate()
        self.calls.append(("status", (input.status, input.event, input.generation)))
        return wc.RecordStatusResult(exists=True)

    @activity.defn(name=wc.ACTIVITY_RECORD_SCALE)
    async def record_scale(self, input: wc.RecordScaleInput) -> None:
        await self._gate()
        self.calls.append(("scale", input.replicas))

    @activity.defn(name=wc.ACTIVITY_BEGIN_GENERATION)
    async def begin_generation(self, input: wc.RecordStatusInput) -> wc.BeginGenerationResult:
        await self.record_status(input)
        return wc.BeginGenerationResult(
            exists=True, plan=_plan(input.workload_id, input.generation)
        )

    @activity.defn(name=wc.ACTIVITY_SUPERVISE)
    async def supervise(self, input: wc.SuperviseInput) -> wc.SuperviseResult:
        """As the real one: ready at once; then it says where it runs and keeps the workload
        until released there (or cancelled, which reaches it with a heartbeat)."""
        self.calls.append(("supervise", input.plan.generation))
        if input.wait_for_ready:
            return wc.SuperviseResult(outcome="ready", running_recorded=self.records_running)
        released = self.released[input.plan.workload_id] = asyncio.Event()
        self.supervising.set()
        await self.may_announce.wait()
        info = activity.info()
        await (
            activity.client()
            .get_workflow_handle(info.workflow_id or "")
            .signal(
                wc.SIGNAL_SUPERVISED,
                wc.SupervisedInput(
                    activity_id=info.activity_id,
                    attempt=info.attempt,
                    worker="fake",
                    task_queue=self.own_queue,
                ),
            )
        )
        while not released.is_set():
            activity.heartbeat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), 0.2)
        return wc.SuperviseResult(outcome="released")

    @activity.defn(name=wc.ACTIVITY_RELEASE_SUPERVISION)
    async def release_supervision(self, input: wc.WorkloadIdInput) -> int:
        self.calls.append(("release", input.workload_id))
        self.released[input.workload_id].set()
        return 1

    @activity.defn(name=wc.ACTIVITY_WITHDRAW_REPLICAS)
    async def withdraw_replicas(self, input: wc.WorkloadIdInput) -> None:
        return None

    @activity.defn(name=wc.ACTIVITY_REMOVE_CONTAINERS)
    async def remove_containers(self, input: wc.WorkloadIdInput) -> int:
        self.calls.append(("remove", input.workload_id))
        return 0

    @activity.defn(name=dc.ACTIVITY_RECORD_STATUS)
    async def record_deployment(self, input: dc.RecordDeploymentInput) -> None:
        await self._gate()
        self.calls.append(("deployment", (input.status, input.event)))

    @activity.defn(name=dc.ACTIVITY_MONITOR)
    async def monitor(self, input: dc.MonitorInput) -> dc.MonitorResult:
        if input.status != "healthy":
            return dc.MonitorResult(status="healthy")
        while True:  # healthy: nothing to report
            activity.heartbeat()
            await asyncio.sleep(0.2)

    @activity.defn(name=dc.ACTIVITY_BEGIN_SWAP)
    async def begin_swap(self, input: dc.BeginSwapInput) -> None:
        self.calls.append(("swap", input.to_workload_id))

    @activity.defn(name=dc.ACTIVITY_ENSURE_WORKLOAD_STARTED)
    async def ensure_workload_started(
        self, input: dc.WorkloadTargetInput
    ) -> dc.EnsureStartedResult:
        return dc.EnsureStartedResult(started=False)

    @activity.defn(name=dc.ACTIVITY_WAIT_RUNNING)
    async def wait_running(self, input: dc.WaitRunningInput) -> dc.WaitRunningResult:
        while True:  # the candidate never runs: the swaps stay in progress
            activity.heartbeat()
            await asyncio.sleep(0.2)

    def of(self, kind: str) -> list[Any]:
        return [value for name, value in self.calls if name == kind]


@pytest.fixture
async def fakes(temporal_client: Client, task_queue: str) -> AsyncIterator[Activities]:
    fakes = Activities(own_queue=f"{task_queue}-own")
    methods: list[Callable[..., Any]] = [
        fakes.record_status,
        fakes.record_scale,
        fakes.begin_generation,
        fakes.withdraw_replicas,
        fakes.remove_containers,
        fakes.record_deployment,
        fakes.begin_swap,
        fakes.ensure_workload_started,
        fakes.wait_running,
    ]
    async with (
        Worker(
            temporal_client,
            task_queue=task_queue,
            workflows=[WorkloadWorkflow, DeploymentWorkflow],
            activities=methods,
        ),
        Worker(
            temporal_client,
            task_queue=supervision_queue(task_queue),
            activities=[fakes.supervise, fakes.monitor],
        ),
        Worker(temporal_client, task_queue=fakes.own_queue, activities=[fakes.release_supervision]),
    ):
        yield fakes


async def outcome(call: Any) -> str:
    """'ok', or 'conflict' for a refusal the API answers with 409."""
    try:
        await call
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        assert isinstance(cause, ApplicationError) and cause.type == INVALID_TRANSITION, error
        return "conflict"
    return "ok"


async def held(fakes: Activities, handle: WorkflowHandle[Any, Any], update: str, arg: Any) -> Any:
    """Send `update` with the next record_status held: it holds the lock until released."""
    fakes.hold.set()
    first = asyncio.ensure_future(handle.execute_update(update, arg))
    await asyncio.wait_for(fakes.holding.wait(), 30)
    fakes.holding.clear()
    return first


async def stopped_workload(client: Client, task_queue: str) -> WorkflowHandle[Any, Any]:
    workload_id = uuid.uuid4().hex[:24]
    return await client.start_workflow(
        wc.WORKFLOW_TYPE,
        wc.WorkloadInput(workload_id=workload_id, status="stopped"),
        id=wc.workflow_id(workload_id),
        task_queue=task_queue,
        # Status records are local activities, run inside a workflow task: an Update sent
        # while one is held reaches the workflow when the SDK heartbeats that task, at 80% of
        # this timeout (default 10 s), and so meets the lock held.
        task_timeout=timedelta(seconds=1),
    )


def scale_to(replicas: int) -> wc.ScaleInput:
    return wc.ScaleInput(actor="alice", replicas={"default": replicas})


async def current(handle: WorkflowHandle[Any, Any]) -> wc.WorkloadState:
    state: wc.WorkloadState = await handle.query(wc.QUERY_CURRENT, result_type=wc.WorkloadState)
    return state


async def test_two_starts_start_one_generation(
    fakes: Activities, temporal_client: Client, task_queue: str
) -> None:
    handle = await stopped_workload(temporal_client, task_queue)
    actor = wc.TransitionInput(actor="alice")
    # A scale holds the lock: both starts pass their validators (it is stopped) and wait.
    scale = await held(fakes, handle, wc.UPDATE_SCALE, scale_to(2))
    starts = [
        asyncio.ensure_future(outcome(handle.execute_update(wc.UPDATE_START, actor)))
        for _ in range(2)
    ]
    await asyncio.sleep(1)
    fakes.release.set()
    assert await outcome(scale) == "ok"
    assert sorted(await asyncio.gather(*starts)) == ["conflict", "ok"]
    await _eventually(lambda: current(handle), lambda s: s.status == "running")
    assert [e for _, e, _ in fakes.of("status") if e == "starting"] == ["starting"]
    assert set(fakes.of("supervise")) == {1}
    assert (await current(handle)).generation == 1


async def test_a_stop_sent_during_a_start_follows_it(
    fakes: Activities, temporal_client: Client, task_queue: str
) -> None:
    handle = await stopped_workload(temporal_client, task_queue)
    actor = wc.TransitionInput(actor="alice")
    start = await held(fakes, handle, wc.UPDATE_START, actor)
    # Accepted while the start still holds the lock (its record is held).
    stop = await asyncio.wait_for(
        handle.start_update(wc.UPDATE_STOP, actor, wait_for_stage=WorkflowUpdateStage.ACCEPTED),
        10,
    )
    assert not fakes.release.is_set()
    fakes.release.set()
    assert (await outcome(start), await outcome(stop.result())) == ("ok", "ok")
    await _eventually(lambda: current(handle), lambda s: s.status == "stopped")
    events = [event for _, event, _ in fakes.of("status")]
    assert events == ["starting", "stop_requested", "stopped"], events
    assert len(fakes.of("remove")) == 1


async def test_a_start_sent_during_a_stop_follows_it(
    fakes: Activities, temporal_client: Client, task_queue: str
) -> None:
    """A client that reads `stopped` and starts at once may reach the workflow before the
    workflow has seen its own `stopped` record: the start waits for the stop, then applies."""
    handle = await stopped_workload(temporal_client, task_queue)
    actor = wc.TransitionInput(actor="alice")
    await handle.execute_update(wc.UPDATE_START, actor)
    await _eventually(lambda: current(handle), lambda s: s.status == "running")
    await handle.execute_update(wc.UPDATE_STOP, actor)
    fakes.hold.set()  # the next record is `stopped`, after the drain's two seconds
    await asyncio.wait_for(fakes.holding.wait(), 30)
    start = asyncio.ensure_future(outcome(handle.execute_update(wc.UPDATE_START, actor)))
    await asyncio.sleep(1)
    fakes.release.set()
    assert await start == "ok"
    await _eventually(lambda: current(handle), lambda s: s.status == "running")
    events = [(event, generation) for _, event, generation in fakes.of("status")]
    assert events[2:] == [("stop_requested", 1), ("stopped", 1), ("starting", 2), ("running", 2)]


async def test_two_stops_stop_once(
    fakes: Activities, temporal_client: Client, task_queue: str
) -> None:
    handle = await stopped_workload(temporal_client, task_queue)
    actor = wc.TransitionInput(actor="alice")
    await handle.execute_update(wc.UPDATE_START, actor)
    await _eventually(lambda: current(handle), lambda s: s.status == "running")
    scale = await held(fakes, handle, wc.UPDATE_SCALE, scale_to(2))
    stops = [
        asyncio.ensure_future(outcome(handle.execute_update(wc.UPDATE_STOP, actor)))
        for _ in range(2)
    ]
    await asyncio.sleep(1)
    fakes.release.set()
    assert await outcome(scale) == "ok"
    assert sorted(await asyncio.gather(*stops)) == ["conflict", "ok"]
    await _eventually(lambda: current(handle), lambda s: s.status == "stopped")
    assert [e for _, e, _ in fakes.of("status")].count("stop_requested") == 1
    assert len(fakes.of("remove")) == 1


async def test_a_stop_right_after_running_releases_the_supervision(
    fakes: Activities, temporal_client: Client, task_queue: str
) -> None:
    """A stop that reaches the workflow before its new supervision has said where it runs
    waits for that, and ends it on its worker; it does not cancel it, which the supervision
    learns only with a heartbeat (up to 8 s later)."""
    handle = await stopped_workload(temporal_client, task_queue)
    actor = wc.TransitionInput(actor="alice")
    fakes.may_announce.clear()
    await handle.execute_update(wc.UPDATE_START, actor)
    await asyncio.wait_for(fakes.supervising.wait(), 30)  # running, supervised, not announced
    stop = await handle.start_update(
        wc.UPDATE_STOP, actor, wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )
    fakes.may_announce.set()
    await asyncio.wait_for(stop.result(), 30)
    await _eventually(lambda: current(handle), lambda s: s.status == "stopped")
    assert fakes.of("release") == [(await current(handle)).workload_id]
    history = await handle.fetch_history()
    await replay(keep(history, "workload", "stop_right_after_running"))


async def test_running_written_by_the_supervision_is_not_recorded_again(
    fakes: Activities, temporal_client: Client, task_queue: str
) -> None:
    handle = await stopped_workload(temporal_client, task_queue)
    fakes.records_running = True
    await handle.execute_update(wc.UPDATE_START, wc.TransitionInput(actor="alice"))
    await _eventually(lambda: current(handle), lambda s: s.status == "running")
    assert [event for _, event, _ in fakes.of("status")] == ["starting"]
    history = await handle.fetch_history()
    await replay(keep(history, "workload", "running_by_supervision"))


async def test_two_swaps_sent_together_swap_once(
    fakes: Activities, temporal_client: Client, task_queue: str
) -> None:
    deployment_id = uuid.uuid4().hex[:24]
    handle = await temporal_client.start_workflow(
        dc.WORKFLOW_TYPE,
        dc.DeploymentInput(deployment_id=deployment_id, workload_id="w0", status="unknown"),
        id=dc.deployment_workflow_id(deployment_id),
        task_queue=task_queue,
    )
    # The monitor reports `healthy`: the workflow records it under its lock, held here.
    fakes.hold.set()
    await asyncio.wait_for(fakes.holding.wait(), 30)

    def swap(to: str) -> dc.SwapInput:
        return dc.SwapInput(
            swap_id=uuid.uuid4().hex,
            workload_id=to,
            ready_timeout_seconds=600,
            keep_previous_seconds=0,
            actor="alice",
        )

    sent = [
        asyncio.ensure_future(outcome(handle.execute_update(dc.UPDATE_SWAP, swap(to))))
        for to in ("w1", "w2")
    ]
    await asyncio.sleep(1)  # both accepted: no swap was in progress when they arrived
    fakes.release.set()
    results = sorted(await asyncio.gather(*sent))
    assert results == ["conflict", "ok"]
    assert len(fakes.of("swap")) == 1
    state = await handle.query(dc.QUERY_CURRENT, result_type=dc.DeploymentState)
    assert state.swap is not None and state.swap.candidate == fakes.of("swap")[0]


async def _eventually(fetch: Any, done: Any, within: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await fetch()
        if done(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached in {within} s: {value}")
        await asyncio.sleep(0.2)
