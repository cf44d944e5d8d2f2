"""The rollout steps of the deployment workflow: start the candidate, then set weights, pause
and analyse in order, and finally move all traffic to the candidate or back to stable.

A mixin of `DeploymentWorkflow` (its Updates live there, beside the swap's): the rollout shares
the deployment's state, lock and helpers, and a deployment runs one swap or rollout at a time.
A swap is the default rollout (no steps: all traffic once the candidate runs), run by the same
steps here and recorded as a swap (since SWAP_AS_ROLLOUT_PATCH; swaps begun before it run
the deployment workflow's own swap loop).
Every wait is a durable timer or a condition on state the Updates change, so a pause of days
adds no history event while it waits and survives worker and Temporal restarts. Health is
checked meanwhile by the same long `monitor` activity as outside a rollout (one activity per
day, or per change of verdict: no events while the verdict holds).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from models.rollouts import RolloutStep
    from models.status import RolloutStatus
    from workflows.common import (
        CATALOG_RETRY,
        HEARTBEAT_TIMEOUT,
        LONG_ACTIVITY_LEASE,
        call_activity,
        supervision_queue,
    )
    from workflows.deployment_contract import (
        ACTIVITY_ANALYZE_ROLLOUT,
        ACTIVITY_ENSURE_WORKLOAD_STARTED,
        ACTIVITY_MONITOR,
        ACTIVITY_RECORD_ROLLOUT,
        ACTIVITY_WAIT_RUNNING,
        AnalyzeInput,
        AnalyzeResult,
        DeploymentState,
        EnsureStartedResult,
        HealthVerdict,
        MonitorInput,
        MonitorResult,
        Retirement,
        RolloutRecordInput,
        RolloutState,
        RolloutView,
        SwapState,
        WaitRunningInput,
        WaitRunningResult,
        WorkloadTargetInput,
    )
    from workflows.search_attributes import ROLLOUT_STATUS, ROLLOUT_WEIGHT, WORKLOAD_ID, upsert

# Every gateway reloads its routes twice a second; after this, none sends to the old workload
# and the requests it already had are done (the workload's own stop drains once more).
TRAFFIC_SETTLE = timedelta(seconds=3)
# A health monitor no worker takes in this time is tried again (outside a rollout: an event).
MONITOR_START_WAIT = timedelta(minutes=5)


def rollout_view(rollout: RolloutState | None) -> RolloutView:
    if rollout is None:
        return RolloutView(rollout_id=None)
    step = rollout.step if rollout.step < len(rollout.steps) else None
    return RolloutView(
        rollout_id=rollout.rollout_id,
        status=rollout.status,
        step=step,
        step_kind=None if step is None else rollout.steps[step].kind,
        weight=rollout.weight,
        paused_by=rollout.paused_by,
    )


class RolloutSteps:
    """Runs `state.rollout` to its end; the workflow class provides the members below."""

    state: DeploymentState
    _lock: asyncio.Lock

    async def _record(self, status: HealthVerdict, event: str, message: str) -> None:
        raise NotImplementedError

    async def _stop_workload(self, workload_id: str) -> None:
        raise NotImplementedError

    async def _switch(self, swap: SwapState) -> None:
        raise NotImplementedError

    async def _roll_back(self, swap: SwapState, reason: str) -> None:
        raise NotImplementedError

    async def _run_rollout(self) -> None:
        rollout = self.state.rollout
        assert rollout is not None
        if rollout.status == "starting":
            await self._start_candidate(rollout)
        while self._rollout_goes_on(rollout) and rollout.step < len(rollout.steps):
            if rollout.paused_by is not None:
                await workflow.wait_condition(
                    lambda: rollout.paused_by is None or not self._rollout_goes_on(rollout)
                )
                continue
            await self._run_step(rollout, rollout.step, rollout.steps[rollout.step])
            if rollout.aborted_by is None:
                rollout.step += 1
        if rollout.is_swap:
            await self._end_swap(rollout)
            self.state.rollout = None
            return
        if self.state.deleting and rollout.aborted_by is None:
            rollout.aborted_by, rollout.abort_reason = "system", "the deployment is being deleted"
        if rollout.aborted_by is not None:
            await self._abort_rollout(rollout)
        else:
            await self._complete_rollout(rollout)
        self.state.rollout = None

    async def _end_swap(self, rollout: RolloutState) -> None:
        """A swap, the rollout with no steps: all traffic to the candidate at once (and the
        old workload kept for its rollback window), or rolled back, recorded as a swap."""
        swap = self.state.swap
        assert swap is not None  # set with the rollout, cleared here
        swap.started_candidate = swap.started_candidate or rollout.started_candidate
        async with self._lock:
            if rollout.aborted_by is None and not self.state.deleting:
                swap.switching = True
                await self._switch(swap)
            else:
                reason = rollout.abort_reason or "the candidate did not run"
                if self.state.deleting and swap.cancelled_by is None:
                    reason = "cancelled by deletion of the deployment"
                await self._roll_back(swap, reason)
            self.state.swap = None

    def _rollout_goes_on(self, rollout: RolloutState) -> bool:
        return rollout.aborted_by is None and not rollout.promote_full and not self.state.deleting

    async def _start_candidate(self, rollout: RolloutState) -> None:
        started = await call_activity(
            ACTIVITY_ENSURE_WORKLOAD_STARTED,
            WorkloadTargetInput(workload_id=rollout.candidate, actor=rollout.actor),
            EnsureStartedResult,
            summary=f"start candidate workload {rollout.candidate}",
        )
        rollout.started_candidate = rollout.started_candidate or started.started
        if rollout.deadline is None:
            rollout.deadline = workflow.now() + timedelta(seconds=rollout.ready_timeout_seconds)
        waiting = workflow.start_activity(
            ACTIVITY_WAIT_RUNNING,
            WaitRunningInput(workload_id=rollout.candidate, deadline=rollout.deadline),
            result_type=WaitRunningResult,
            summary=f"wait until workload {rollout.candidate} runs",
            start_to_close_timeout=timedelta(seconds=rollout.ready_timeout_seconds + 120),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=CATALOG_RETRY,
            cancellation_type=workflow.ActivityCancellationType.TRY_CANCEL,
        )
        await workflow.wait_condition(
            lambda: waiting.done() or rollout.aborted_by is not None or self.state.deleting
        )
        if not waiting.done():
            waiting.cancel()
        try:
            outcome: WaitRunningResult = await waiting
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                return  # aborted or deleted: the caller says so
            outcome = WaitRunningResult(running=False, reason=f"waiting failed: {error.cause}")
        async with self._lock:
            if rollout.aborted_by is not None or self.state.deleting:
                return
            if not outcome.running:
                rollout.aborted_by = "system"
                rollout.abort_reason = outcome.reason or "the candidate did not run"
                return
            rollout.status = "paused" if rollout.paused_by else "progressing"
            await self._record_rollout(
                rollout, "candidate_running", f"candidate workload {rollout.candidate} runs"
            )

    async def _run_step(self, rollout: RolloutState, index: int, step: RolloutStep) -> None:
        if step.set_weight is not None:
            async with self._lock:
                rollout.weight = step.set_weight
                await self._record_rollout(
                    rollout, "weight_set", f"step {index}: the candidate takes {step.set_weight}%"
                )
            return
        duration = step.pause.duration_seconds if step.pause else None
        if step.analysis is not None:
            duration = step.analysis.duration_seconds
        async with self._lock:
            what = "analysis" if step.analysis else "pause"
            until = f"for {duration} s" if duration else "until promoted"
            await self._record_rollout(rollout, f"{what}_started", f"step {index}: {what} {until}")
        since = workflow.now()
        await self._wait_watching_health(rollout, duration)
        promoted, rollout.promote_step = rollout.promote_step, False
        if step.analysis is None or not self._rollout_goes_on(rollout) or promoted:
            return
        result = await call_activity(
            ACTIVITY_ANALYZE_ROLLOUT,
            AnalyzeInput(
                deployment_id=self.state.deployment_id,
                candidate_workload_id=rollout.candidate,
                stable_workload_id=rollout.stable,
                since=since,
                until=workflow.now(),
                analysis=step.analysis,
            ),
            AnalyzeResult,
            summary=f"analyse candidate {rollout.candidate}",
        )
        async with self._lock:
            if result.passed:
                await self._record_rollout(
                    rollout, "analysis_passed", f"step {index}: {result.summary}"
                )
            elif rollout.aborted_by is None:
                rollout.aborted_by = "analysis"
                rollout.abort_reason = f"step {index}: analysis failed: {result.summary}"

    async def _wait_watching_health(self, rollout: RolloutState, duration: int | None) -> None:
        """Until `duration` is over (None: until woken) or an Update wakes the rollout, with
        the health monitor running; a verdict it reports is recorded as outside a rollout."""
        deadline = workflow.now() + timedelta(seconds=duration) if duration else None

        def woken() -> bool:
            return rollout.promote_step or not self._rollout_goes_on(rollout)

        while not woken() and (deadline is None or workflow.now() < deadline):
            monitor = workflow.start_activity(
                ACTIVITY_MONITOR,
                MonitorInput(deployment_id=self.state.deployment_id, status=self.state.status),
                result_type=MonitorResult,
                summary=f"monitor health during the rollout (now {self.state.status})",
                task_queue=supervision_queue(workflow.info().task_queue),
                schedule_to_start_timeout=MONITOR_START_WAIT,
                start_to_close_timeout=LONG_ACTIVITY_LEASE,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=CATALOG_RETRY,
                cancellation_type=workflow.ActivityCancellationType.TRY_CANCEL,
            )
            # A durable timer: nothing is written to the history until it fires, the monitor
            # reports a new verdict, or an Update wakes the rollout.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda handle=monitor: handle.done() or woken(),  # type: ignore[misc]
                    timeout=None if deadline is None else deadline - workflow.now(),
                )
            if not monitor.done():
                monitor.cancel()
            try:
                result: MonitorResult = await monitor
            except ActivityError:
                continue  # cancelled, or not taken in time: the next round checks again
            if result.status != self.state.status and not self.state.deleting:
                async with self._lock:
                    await self._record(
                        result.status, "status_changed", result.reason or result.status
                    )

    async def _complete_rollout(self, rollout: RolloutState) -> None:
        async with self._lock:
            rollout.status, rollout.weight = "completed", 100
            rollout.step = len(rollout.steps)  # promoted in full: the steps left are skipped
            # The record moves the deployment to the candidate: one catalog write.
            await self._record_rollout(
                rollout,
                "rollout_completed",
                f"workload {rollout.candidate} takes all traffic",
            )
            self.state.workload_id = rollout.candidate
            upsert({WORKLOAD_ID: rollout.candidate})
            self.state.retiring = [
                r for r in self.state.retiring if r.workload_id != rollout.candidate
            ]
            stop_at = (
                workflow.now() + TRAFFIC_SETTLE + timedelta(seconds=rollout.keep_previous_seconds)
            )
            self.state.retiring.append(
                Retirement(swap_id=rollout.rollout_id, workload_id=rollout.stable, stop_at=stop_at)
            )
            await self._record(
                "unknown", "rollout_completed", f"traffic moved to workload {rollout.candidate}"
            )

    async def _abort_rollout(self, rollout: RolloutState) -> None:
        async with self._lock:
            rollout.status, rollout.weight = "aborted", 0
            reason = rollout.abort_reason or f"aborted by {rollout.aborted_by}"
            await self._record_rollout(
                rollout,
                "rollout_aborted",
                f"all traffic back on workload {rollout.stable}: {reason}",
                actor=rollout.aborted_by or "system",
                reason=reason,
            )
        if rollout.started_candidate:
            await workflow.sleep(TRAFFIC_SETTLE)  # calls already on the candidate finish
            await self._stop_workload(rollout.candidate)

    async def _record_rollout(
        self,
        rollout: RolloutState,
        event: str,
        message: str,
        *,
        actor: str = "system",
        reason: str | None = None,
    ) -> None:
        """One step or decision, durable in the catalog (row, history, event, audit) and shown
        in the workflow's search attributes. Called under the lock. (A swap records itself
        as a swap when it ends.)"""
        if rollout.is_swap:
            return
        status: RolloutStatus = rollout.status
        view = rollout_view(rollout)
        await call_activity(
            ACTIVITY_RECORD_ROLLOUT,
            RolloutRecordInput(
                deployment_id=self.state.deployment_id,
                rollout_id=rollout.rollout_id,
                status=status,
                step=view.step,
                weight=rollout.weight,
                event=event,
                message=message,
                actor=actor,
                reason=reason,
            ),
            summary=f"rollout {status}: {event}, weight {rollout.weight}%",
        )
        upsert({ROLLOUT_STATUS: status, ROLLOUT_WEIGHT: rollout.weight})
