"""The deployment entity workflow: one per deployment, from creation until it is deleted.

It keeps the deployment's health verdict (healthy, degraded, unknown) true through a long
`monitor` activity that checks health and returns only when the verdict changes, and it runs
zero-downtime swaps: start the candidate, wait until it runs, move traffic (one catalog write
that every gateway sees within a second), then stop the old workload once in-flight requests
are done and the rollback window is over. A candidate that does not run in time is rolled back.
The deployment's lifecycle status is not kept here: it is read from the workload traffic goes to.
Rollouts (a candidate taking a growing share of traffic, step by step) have their Updates
here, beside the swap's, and their steps in `workflows/rollout.py`; one swap or rollout at a
time. A swap is the default rollout (no steps): since SWAP_AS_ROLLOUT_PATCH it runs through
the rollout's steps and is recorded as a swap (`_run_swap` below runs the swaps begun
before). Health is monitored during a rollout's pauses and analyses, not during a swap.

The `monitor` activity runs on the supervision task queue (each worker takes at most its
capacity of long activities); a monitor no worker takes in time is reported in an event and
keeps waiting. A swap is validated, then checked again under the lock, so of two swaps sent
together exactly one applies and the other is refused (409). No activity failure fails the
workflow: it is recorded, and the deployment stays alive for swaps and delete.

Why one module of this length: the swap state machine (updates, main loop, rollback,
retirement) shares one lock and one state; it reads top to bottom in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from models.status import SwapStatus
    from workflows.common import (
        CATALOG_RETRY,
        HEARTBEAT_TIMEOUT,
        INVALID_TRANSITION,
        LOCKED_RUNTIME_LIMIT,
        LONG_ACTIVITY_LEASE,
        failure_message,
        not_started_in_time,
        supervision_queue,
    )
    from workflows.common import call_activity as _call
    from workflows.deployment_contract import (
        ACTIVITY_BEGIN_ROLLOUT,
        ACTIVITY_BEGIN_SWAP,
        ACTIVITY_ENSURE_WORKLOAD_STARTED,
        ACTIVITY_FINISH_SWAP,
        ACTIVITY_FORGET_DEPLOYMENT,
        ACTIVITY_MONITOR,
        ACTIVITY_RECORD_EVENT,
        ACTIVITY_RECORD_STATUS,
        ACTIVITY_STOP_WORKLOAD,
        ACTIVITY_WAIT_RUNNING,
        QUERY_CURRENT,
        QUERY_ROLLOUT,
        UPDATE_ABORT,
        UPDATE_CANCEL_SWAP,
        UPDATE_DELETE,
        UPDATE_PAUSE,
        UPDATE_PROMOTE,
        UPDATE_RESUME,
        UPDATE_ROLLOUT,
        UPDATE_SWAP,
        WORKFLOW_TYPE,
        ActorInput,
        BeginRolloutInput,
        BeginSwapInput,
        DeploymentEventInput,
        DeploymentIdInput,
        DeploymentInput,
        DeploymentResult,
        DeploymentState,
        EnsureStartedResult,
        HealthVerdict,
        MonitorInput,
        MonitorResult,
        RecordDeploymentInput,
        Retirement,
        RolloutControlInput,
        RolloutInput,
        RolloutState,
        RolloutView,
        SwapInput,
        SwapRecordInput,
        SwapState,
        WaitRunningInput,
        WaitRunningResult,
        WorkloadTargetInput,
    )
    from workflows.rollout import TRAFFIC_SETTLE, RolloutSteps, rollout_view
    from workflows.search_attributes import (
        ROLLOUT_STATUS,
        ROLLOUT_WEIGHT,
        STATUS,
        SWAP_STATUS,
        WORKLOAD_ID,
        upsert,
    )

# Monitor on the supervision queue, cancelled without waiting; a swap re-checked under the
# lock; activity failures recorded instead of failing the workflow.
SUPERVISION_PATCH = "supervision-queue-and-safe-swaps"
# A swap runs as the default rollout (`workflows/rollout.py`), recorded as a swap.
SWAP_AS_ROLLOUT_PATCH = "swap-as-default-rollout"
CAPACITY_WAIT = timedelta(seconds=20)
CAPACITY_WAIT_AGAIN = timedelta(minutes=5)
# After a monitor failed for another reason: wait before the next one.
MONITOR_BACKOFF = timedelta(seconds=30)


@workflow.defn(name=WORKFLOW_TYPE)
class DeploymentWorkflow(RolloutSteps):
    @workflow.init
    def __init__(self, input: DeploymentInput) -> None:
        self.state = input.state or DeploymentState(
            deployment_id=input.deployment_id, workload_id=input.workload_id, status=input.status
        )
        self._lock = asyncio.Lock()
        self._torn_down = False
        self._waiting_for_capacity = False

    @workflow.run
    async def run(self, input: DeploymentInput) -> None:
        while not self._deleting():
            # No history before rollouts has one: this branch needs no patch.
            if self.state.rollout is not None:
                await self._run_rollout()
            elif self.state.swap is not None:
                await self._run_swap()
            else:
                await self._monitor_once()
            await self._retire_due()
            if self._continue_as_new_suggested() and not self._deleting():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    DeploymentInput(
                        deployment_id=self.state.deployment_id,
                        workload_id=self.state.workload_id,
                        state=self.state,
                    )
                )
        await self._tear_down()
        await workflow.wait_condition(workflow.all_handlers_finished)

    @workflow.query(name=QUERY_CURRENT)
    def current(self) -> DeploymentState:
        return self.state

    @workflow.query(name=QUERY_ROLLOUT)
    def rollout_state(self) -> RolloutView:
        return rollout_view(self.state.rollout)

    # Updates

    @workflow.update(name=UPDATE_SWAP)
    async def swap(self, input: SwapInput) -> DeploymentResult:
        async with self._lock:
            if workflow.patched(SUPERVISION_PATCH):
                # Another swap may have begun while this one waited for the lock.
                self._validate_swap(input)
            self.state.swap = SwapState(
                swap_id=input.swap_id,
                candidate=input.workload_id,
                previous=self.state.workload_id,
                previous_status=self.state.status,
                ready_timeout_seconds=input.ready_timeout_seconds,
                keep_previous_seconds=input.keep_previous_seconds,
                actor=input.actor,
            )
            if workflow.patched(SWAP_AS_ROLLOUT_PATCH):
                # The default rollout: no steps, all traffic once the candidate runs. Set
                # with the swap, so the main loop never takes it for an old-style swap.
                self.state.rollout = RolloutState(
                    rollout_id=input.swap_id,
                    candidate=input.workload_id,
                    stable=self.state.workload_id,
                    steps=[],
                    ready_timeout_seconds=input.ready_timeout_seconds,
                    keep_previous_seconds=input.keep_previous_seconds,
                    actor=input.actor,
                    is_swap=True,
                )
            await _call(
                ACTIVITY_BEGIN_SWAP,
                BeginSwapInput(
                    deployment_id=self.state.deployment_id,
                    swap_id=input.swap_id,
                    from_workload_id=self.state.workload_id,
                    to_workload_id=input.workload_id,
                    ready_timeout_seconds=input.ready_timeout_seconds,
                    keep_previous_seconds=input.keep_previous_seconds,
                    actor=input.actor,
                ),
                summary=f"begin swap {input.swap_id} to workload {input.workload_id}",
            )
            upsert({SWAP_STATUS: "starting"})
        return self._result()

    @swap.validator
    def _validate_swap(self, input: SwapInput) -> None:
        self._not_deleting()
        self._no_rollout()
        if self.state.swap is not None:
            raise ApplicationError(
                f"swap {self.state.swap.swap_id} to workload {self.state.swap.candidate} is in "
                "progress; cancel it first",
                type=INVALID_TRANSITION,
            )
        if input.workload_id == self.state.workload_id:
            raise ApplicationError(
                f"workload {input.workload_id} already takes this deployment's traffic",
                type=INVALID_TRANSITION,
            )

    @workflow.update(name=UPDATE_CANCEL_SWAP)
    async def cancel_swap(self, input: ActorInput) -> DeploymentResult:
        assert self.state.swap is not None
        self.state.swap.cancelled_by = input.actor
        rollout = self.state.rollout
        if rollout is not None and rollout.is_swap:
            rollout.aborted_by, rollout.abort_reason = input.actor, f"cancelled by {input.actor}"
        swap_id = self.state.swap.swap_id
        await workflow.wait_condition(
            lambda: self.state.swap is None or self.state.swap.swap_id != swap_id
        )
        return self._result()

    @cancel_swap.validator
    def _validate_cancel(self, input: ActorInput) -> None:
        self._not_deleting()
        if self.state.swap is None:
            raise ApplicationError("no swap is in progress", type=INVALID_TRANSITION)
        if self.state.swap.cancelled_by is not None:
            raise ApplicationError("the swap is already being cancelled", type=INVALID_TRANSITION)
        if self.state.swap.switching:
            raise ApplicationError(
                "too late to cancel: traffic is moving to the candidate; swap back instead",
                type=INVALID_TRANSITION,
            )

    # Rollouts (the steps run in `RolloutSteps`)

    @workflow.update(name=UPDATE_ROLLOUT)
    async def rollout(self, input: RolloutInput) -> RolloutView:
        async with self._lock:
            self._validate_rollout(input)  # again: another may have begun meanwhile
            rollout = RolloutState(
                rollout_id=input.rollout_id,
                candidate=input.workload_id,
                stable=self.state.workload_id,
                steps=input.steps,
                ready_timeout_seconds=input.ready_timeout_seconds,
                keep_previous_seconds=input.keep_previous_seconds,
                actor=input.actor,
            )
            await _call(
                ACTIVITY_BEGIN_ROLLOUT,
                BeginRolloutInput(
                    deployment_id=self.state.deployment_id,
                    rollout_id=input.rollout_id,
                    stable_workload_id=self.state.workload_id,
                    candidate_workload_id=input.workload_id,
                    steps=input.steps,
                    ready_timeout_seconds=input.ready_timeout_seconds,
                    keep_previous_seconds=input.keep_previous_seconds,
                    actor=input.actor,
                ),
                summary=f"begin rollout {input.rollout_id} to workload {input.workload_id}",
            )
            self.state.rollout = rollout
            upsert({ROLLOUT_STATUS: "starting", ROLLOUT_WEIGHT: 0})
        return rollout_view(rollout)

    @rollout.validator
    def _validate_rollout(self, input: RolloutInput) -> None:
        self._not_deleting()
        self._no_rollout()
        if self.state.swap is not None:
            raise ApplicationError(
                f"swap {self.state.swap.swap_id} is in progress; cancel it first",
                type=INVALID_TRANSITION,
            )
        if input.workload_id == self.state.workload_id:
            raise ApplicationError(
                f"workload {input.workload_id} already takes this deployment's traffic",
                type=INVALID_TRANSITION,
            )

    @workflow.update(name=UPDATE_PROMOTE)
    async def promote_rollout(self, input: RolloutControlInput) -> RolloutView:
        rollout = self._controlled(input)
        async with self._lock:
            if input.full:
                rollout.promote_full = True
            else:
                rollout.promote_step = True
            if rollout.paused_by is not None:
                rollout.paused_by = None
                rollout.status = "progressing"
            to = "all traffic to the candidate" if input.full else "on to the next step"
            await self._record_rollout(
                rollout, "promoted", f"promoted by {input.actor}: {to}", actor=input.actor
            )
        return rollout_view(rollout)

    @promote_rollout.validator
    def _validate_promote(self, input: RolloutControlInput) -> None:
        self._controlled(input)

    @workflow.update(name=UPDATE_PAUSE)
    async def pause_rollout(self, input: RolloutControlInput) -> RolloutView:
        rollout = self._controlled(input)
        async with self._lock:
            rollout.paused_by = input.actor
            if rollout.status == "progressing":
                rollout.status = "paused"
            await self._record_rollout(
                rollout,
                "paused",
                f"paused by {input.actor}: no further step until resumed",
                actor=input.actor,
            )
        return rollout_view(rollout)

    @pause_rollout.validator
    def _validate_pause(self, input: RolloutControlInput) -> None:
        rollout = self._controlled(input)
        if rollout.paused_by is not None:
            raise ApplicationError(
                f"rollout {rollout.rollout_id} is already paused (by {rollout.paused_by})",
                type=INVALID_TRANSITION,
            )

    @workflow.update(name=UPDATE_RESUME)
    async def resume_rollout(self, input: RolloutControlInput) -> RolloutView:
        rollout = self._controlled(input)
        async with self._lock:
            rollout.paused_by = None
            if rollout.status == "paused":
                rollout.status = "progressing"
            await self._record_rollout(
                rollout, "resumed", f"resumed by {input.actor}", actor=input.actor
            )
        return rollout_view(rollout)

    @resume_rollout.validator
    def _validate_resume(self, input: RolloutControlInput) -> None:
        rollout = self._controlled(input)
        if rollout.paused_by is None:
            raise ApplicationError(
                f"rollout {rollout.rollout_id} is {rollout.status}, not paused",
                type=INVALID_TRANSITION,
            )

    @workflow.update(name=UPDATE_ABORT)
    async def abort_rollout(self, input: RolloutControlInput) -> RolloutView:
        rollout = self._controlled(input)
        rollout.aborted_by = input.actor
        rollout.abort_reason = f"aborted by {input.actor}"
        # Answered once traffic is back on stable: the runner records it.
        await workflow.wait_condition(lambda: self.state.rollout is not rollout)
        return rollout_view(rollout)

    @abort_rollout.validator
    def _validate_abort(self, input: RolloutControlInput) -> None:
        self._controlled(input)

    def _controlled(self, input: RolloutControlInput) -> RolloutState:
        """The rollout in progress that `input` names, if it still takes decisions."""
        self._not_deleting()
        rollout = self.state.rollout
        if rollout is None or rollout.is_swap or rollout.rollout_id != input.rollout_id:
            raise ApplicationError(
                f"rollout {input.rollout_id} is not in progress", type=INVALID_TRANSITION
            )
        if rollout.aborted_by is not None:
            raise ApplicationError(
                f"rollout {rollout.rollout_id} is being aborted", type=INVALID_TRANSITION
            )
        if rollout.promote_full:
            raise ApplicationError(
                f"rollout {rollout.rollout_id} is completing (promoted in full)",
                type=INVALID_TRANSITION,
            )
        return rollout

    def _no_rollout(self) -> None:
        rollout = self.state.rollout
        if rollout is not None and not rollout.is_swap:  # a swap answers as a swap
            raise ApplicationError(
                f"rollout {rollout.rollout_id} to workload {rollout.candidate} is "
                f"{rollout.status}; abort it first",
                type=INVALID_TRANSITION,
            )

    @workflow.update(name=UPDATE_DELETE)
    async def delete(self, input: ActorInput) -> DeploymentResult:
        self.state.deleting = True
        await workflow.wait_condition(lambda: self._torn_down)
        return self._result()

    @delete.validator
    def _validate_delete(self, input: ActorInput) -> None:
        self._not_deleting()

    # Health

    async def _monitor_once(self) -> None:
        patched = workflow.patched(SUPERVISION_PATCH)
        wait = CAPACITY_WAIT_AGAIN if self._waiting_for_capacity else CAPACITY_WAIT
        handle = workflow.start_activity(
            ACTIVITY_MONITOR,
            MonitorInput(deployment_id=self.state.deployment_id, status=self.state.status),
            result_type=MonitorResult,
            summary=f"monitor health (now {self.state.status})",
            task_queue=supervision_queue(workflow.info().task_queue) if patched else None,
            schedule_to_start_timeout=wait if patched else None,
            start_to_close_timeout=LONG_ACTIVITY_LEASE,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=CATALOG_RETRY,
            # It only reads and records checks: the workflow need not wait for a heartbeat to
            # carry the cancellation before it swaps or deletes.
            cancellation_type=(
                workflow.ActivityCancellationType.TRY_CANCEL
                if patched
                else workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
            ),
        )
        # A timeout means a rollback window ended; the caller retires the old workload.
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: (
                    handle.done()
                    or self.state.swap is not None
                    or self.state.rollout is not None
                    or self.state.deleting
                    or self._continue_as_new_suggested()
                ),
                timeout=self._until_next_retirement(),
            )
        if not handle.done():
            handle.cancel()
        try:
            result: MonitorResult = await handle
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                return
            if not patched:
                raise
            await self._monitor_failed(error)
            return
        self._waiting_for_capacity = False
        async with self._lock:
            if (
                self.state.swap is None
                and self.state.rollout is None
                and not self.state.deleting
                and result.status != self.state.status
            ):
                await self._record(result.status, "status_changed", result.reason or result.status)

    async def _monitor_failed(self, error: ActivityError) -> None:
        """Say why health is not being checked; the next round tries again."""
        if not_started_in_time(error):
            if self._waiting_for_capacity:
                return
            self._waiting_for_capacity = True
            message = (
                "health monitoring waits for a worker with room: every worker runs as many "
                "long activities as WAPI_SUPERVISION_CAPACITY allows, or none is running"
            )
        else:
            message = f"health monitoring failed: {failure_message(error)}; retrying"
        await self._event("monitor_waiting", message)
        if not not_started_in_time(error):
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: (
                        self.state.swap is not None
                        or self.state.rollout is not None
                        or self.state.deleting
                    ),
                    timeout=MONITOR_BACKOFF,
                )

    # Swaps

    async def _run_swap(self) -> None:
        swap = self.state.swap
        assert swap is not None
        started = await _call(
            ACTIVITY_ENSURE_WORKLOAD_STARTED,
            WorkloadTargetInput(workload_id=swap.candidate, actor=swap.actor),
            EnsureStartedResult,
            summary=f"start candidate workload {swap.candidate}",
        )
        swap.started_candidate = swap.started_candidate or started.started
        if swap.deadline is None:
            swap.deadline = workflow.now() + timedelta(seconds=swap.ready_timeout_seconds)
        patched = workflow.patched(SUPERVISION_PATCH)
        waiting = workflow.start_activity(
            ACTIVITY_WAIT_RUNNING,
            WaitRunningInput(workload_id=swap.candidate, deadline=swap.deadline),
            result_type=WaitRunningResult,
            summary=f"wait until workload {swap.candidate} runs",
            start_to_close_timeout=timedelta(seconds=swap.ready_timeout_seconds + 120),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=CATALOG_RETRY,
            # It only reads: a cancelled swap rolls back without waiting for a heartbeat.
            cancellation_type=(
                workflow.ActivityCancellationType.TRY_CANCEL
                if patched
                else workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
            ),
        )
        await workflow.wait_condition(
            lambda: waiting.done() or swap.cancelled_by is not None or self.state.deleting
        )
        if not waiting.done():
            waiting.cancel()
        try:
            outcome: WaitRunningResult = await waiting
        except ActivityError as error:
            if not isinstance(error.cause, CancelledError):
                if not patched:
                    raise
                why = f"waiting for the candidate failed: {failure_message(error)}"
                outcome = WaitRunningResult(running=False, reason=why)
            else:
                who = swap.cancelled_by or "deletion of the deployment"
                outcome = WaitRunningResult(running=False, reason=f"cancelled by {who}")
        async with self._lock:
            if outcome.running and swap.cancelled_by is None and not self.state.deleting:
                swap.switching = True
                await self._switch(swap)
            else:
                await self._roll_back(swap, outcome.reason or "the candidate did not run")
            self.state.swap = None

    async def _switch(self, swap: SwapState) -> None:
        await _call(
            ACTIVITY_FINISH_SWAP,
            SwapRecordInput(
                deployment_id=self.state.deployment_id,
                swap_id=swap.swap_id,
                status="switched",
                reason=f"traffic moved from {swap.previous} to {swap.candidate}",
                workload_id=swap.candidate,
                actor=swap.actor,
            ),
            summary=f"swap traffic to workload {swap.candidate}",
        )
        self.state.workload_id = swap.candidate
        upsert({WORKLOAD_ID: swap.candidate, SWAP_STATUS: "switched"})
        # Swapping back inside a rollback window: the candidate must not be retired later.
        self.state.retiring = [r for r in self.state.retiring if r.workload_id != swap.candidate]
        stop_at = workflow.now() + TRAFFIC_SETTLE + timedelta(seconds=swap.keep_previous_seconds)
        self.state.retiring.append(
            Retirement(swap_id=swap.swap_id, workload_id=swap.previous, stop_at=stop_at)
        )
        # Not checked yet: the monitor's next check gives the new workload's verdict.
        await self._record(
            "unknown", "swap_switched", f"traffic moved to workload {swap.candidate}"
        )

    async def _roll_back(self, swap: SwapState, reason: str) -> None:
        if swap.started_candidate:
            await self._stop_workload(swap.candidate)
        cancelled = swap.cancelled_by is not None or self.state.deleting
        swap_status: SwapStatus = "cancelled" if cancelled else "rolled_back"
        await _call(
            ACTIVITY_FINISH_SWAP,
            SwapRecordInput(
                deployment_id=self.state.deployment_id,
                swap_id=swap.swap_id,
                status=swap_status,
                reason=reason,
                actor=swap.cancelled_by or "system",
            ),
            summary=f"{swap_status.replace('_', ' ')}: traffic stays on {swap.previous}",
        )
        upsert({SWAP_STATUS: swap_status})
        event = "swap_cancelled" if cancelled else "swap_rolled_back"
        await self._record(
            swap.previous_status,
            event,
            f"traffic stays on workload {swap.previous}: {reason}",
        )

    async def _retire_due(self) -> None:
        now = workflow.now()
        for retirement in [r for r in self.state.retiring if r.stop_at <= now]:
            await _call(
                ACTIVITY_STOP_WORKLOAD,
                WorkloadTargetInput(workload_id=retirement.workload_id, actor="system"),
                summary=f"retire the old workload {retirement.workload_id}",
            )
            await _call(
                ACTIVITY_FINISH_SWAP,
                SwapRecordInput(
                    deployment_id=self.state.deployment_id,
                    swap_id=retirement.swap_id,
                    status="completed",
                    reason=f"workload {retirement.workload_id} stopped",
                ),
                summary=f"record swap {retirement.swap_id} completed",
            )
            self.state.retiring.remove(retirement)
            upsert({SWAP_STATUS: "completed"})

    def _until_next_retirement(self) -> timedelta | None:
        if not self.state.retiring:
            return None
        earliest = min(r.stop_at for r in self.state.retiring)
        return max(earliest - workflow.now(), timedelta(seconds=1))

    async def _tear_down(self) -> None:
        async with self._lock:
            # Old workloads in a rollback window no longer serve anyone: stop them now.
            for retirement in self.state.retiring:
                await self._stop_workload(retirement.workload_id)
            await _call(
                ACTIVITY_FORGET_DEPLOYMENT,
                DeploymentIdInput(deployment_id=self.state.deployment_id),
            )
            self._torn_down = True

    # Helpers

    async def _stop_workload(self, workload_id: str) -> None:
        """Stop a workload this deployment no longer routes to. Called under the lock, so
        bounded: a workload that cannot be stopped is reported and left to its owner."""
        if not workflow.patched(SUPERVISION_PATCH):
            await _call(
                ACTIVITY_STOP_WORKLOAD, WorkloadTargetInput(workload_id=workload_id, actor="system")
            )
            return
        try:
            await workflow.execute_activity(
                ACTIVITY_STOP_WORKLOAD,
                WorkloadTargetInput(workload_id=workload_id, actor="system"),
                summary=f"stop workload {workload_id}",
                start_to_close_timeout=timedelta(minutes=1),
                schedule_to_close_timeout=LOCKED_RUNTIME_LIMIT,
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1)),
            )
        except ActivityError as error:
            message = f"workload {workload_id} could not be stopped: {failure_message(error)}"
            await self._event("workload_stop_failed", message)

    async def _event(self, event: str, message: str) -> None:
        await _call(
            ACTIVITY_RECORD_EVENT,
            DeploymentEventInput(
                deployment_id=self.state.deployment_id, event=event, message=message
            ),
        )

    async def _record(self, status: HealthVerdict, event: str, message: str) -> None:
        await _call(
            ACTIVITY_RECORD_STATUS,
            RecordDeploymentInput(
                deployment_id=self.state.deployment_id,
                status=status,
                reason=None if status in ("healthy", "active") else message,
                event=event,
                message=message,
            ),
            summary=f"record {status}: {event}",
        )
        self.state.status = status
        upsert({STATUS: status})

    def _not_deleting(self) -> None:
        if self.state.deleting:
            raise ApplicationError("the deployment is being deleted", type=INVALID_TRANSITION)

    def _deleting(self) -> bool:
        return self.state.deleting

    def _result(self) -> DeploymentResult:
        return DeploymentResult(status=self.state.status, workload_id=self.state.workload_id)

    def _continue_as_new_suggested(self) -> bool:
        return workflow.info().is_continue_as_new_suggested()
