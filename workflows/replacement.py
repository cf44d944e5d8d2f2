"""The replacement workflow: move a workload onto another artifact in place, keeping its id and
endpoint, one per replacement (its id is the workload's, so one at a time).

The new version runs as a candidate workload beside the old one; the gateway splits the
workload's own calls between them by the replacement's `weight`, as it splits a deployment's
during a rollout. In order: start the candidate and wait until it runs, warm it up, take the
steps (`setWeight`, timed `pause`, `analysis`), give it all calls, keep the old version for
its window, then restart the workload itself on the new artifact (the candidate serves
meanwhile), hand the calls back to it, and delete the candidate. A cancel (or a failed
analysis, or a candidate that does not run) before the hand-over puts every call back on the
old version and deletes the candidate. Every wait is a durable timer or a condition on state,
so a long pause adds no history events while it waits.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from models.rollouts import RolloutStep
    from models.status import ReplacementStatus
    from workflows.common import CATALOG_RETRY, HEARTBEAT_TIMEOUT, INVALID_TRANSITION
    from workflows.common import call_activity as _call
    from workflows.deployment_contract import (
        ACTIVITY_ANALYZE_ROLLOUT,
        ACTIVITY_ENSURE_WORKLOAD_STARTED,
        ACTIVITY_WAIT_RUNNING,
        AnalyzeInput,
        AnalyzeResult,
        EnsureStartedResult,
        WaitRunningInput,
        WaitRunningResult,
        WorkloadTargetInput,
    )
    from workflows.replacement_contract import (
        ACTIVITY_DELETE_WORKLOAD,
        ACTIVITY_RECORD,
        ACTIVITY_RESTART_ON_ARTIFACT,
        QUERY_CURRENT,
        UPDATE_CANCEL,
        WORKFLOW_TYPE,
        CancelInput,
        ReplacementInput,
        ReplacementRecordInput,
        ReplacementState,
        ReplacementView,
        RestartInput,
    )

# Every gateway reloads its routes twice a second; after this none sends calls by the old
# weight, and calls already sent are done.
TRAFFIC_SETTLE = timedelta(seconds=3)
WORKLOAD_CHANGE_LIMIT = timedelta(minutes=10)


@workflow.defn(name=WORKFLOW_TYPE)
class ReplacementWorkflow:
    @workflow.init
    def __init__(self, input: ReplacementInput) -> None:
        self.state = input.state
        self._done = False

    @workflow.run
    async def run(self, input: ReplacementInput) -> ReplacementView:
        state = self.state
        await _call(
            ACTIVITY_ENSURE_WORKLOAD_STARTED,
            WorkloadTargetInput(workload_id=state.candidate, actor=state.actor),
            EnsureStartedResult,
            summary=f"start the new version (workload {state.candidate})",
        )
        if state.deadline is None:
            state.deadline = workflow.now() + timedelta(seconds=state.ready_timeout_seconds)
        outcome = await self._wait_running(state.candidate, state.ready_timeout_seconds)
        if not outcome.running and not self._cancelled():
            state.cancelled_by, state.reason = "system", outcome.reason
        if not self._cancelled() and state.warmup_seconds:
            await self._record("initializing", "warming_up", f"warm-up {state.warmup_seconds} s")
            await self._wait(state.warmup_seconds)
        if not self._cancelled():
            await self._record("progressing", "candidate_running", "the new version runs")
        for index, step in enumerate(state.steps):
            if self._cancelled():
                break
            state.step = index
            await self._run_step(index, step)
        if self._cancelled():
            await self._abort()
        else:
            await self._hand_over()
        self._done = True
        return self.view()

    @workflow.query(name=QUERY_CURRENT)
    def current(self) -> ReplacementState:
        return self.state

    @workflow.update(name=UPDATE_CANCEL)
    async def cancel(self, input: CancelInput) -> ReplacementView:
        self.state.cancelled_by = input.actor
        self.state.reason = f"cancelled by {input.actor}"
        await workflow.wait_condition(lambda: self._done)  # every call back on the old version
        return self.view()

    @cancel.validator
    def _validate_cancel(self, input: CancelInput) -> None:
        if self.state.status == "finalizing":
            raise ApplicationError(
                "too late to cancel: the new version takes every call and the workload is "
                "moving to it; replace it again instead",
                type=INVALID_TRANSITION,
            )
        if self.state.status not in ("initializing", "progressing"):
            raise ApplicationError(
                f"the replacement is {self.state.status}", type=INVALID_TRANSITION
            )
        if self._cancelled():
            raise ApplicationError("the replacement is being cancelled", type=INVALID_TRANSITION)

    def view(self) -> ReplacementView:
        return ReplacementView(
            replacement_id=self.state.replacement_id,
            status=self.state.status,
            weight=self.state.weight,
        )

    # Steps

    async def _run_step(self, index: int, step: RolloutStep) -> None:
        state = self.state
        if step.set_weight is not None:
            state.weight = step.set_weight
            await self._record(
                "progressing", "weight_set", f"step {index}: the new version takes {state.weight}%"
            )
            return
        duration = step.analysis.duration_seconds if step.analysis else None
        if step.pause is not None:
            duration = step.pause.duration_seconds
        assert duration is not None  # the API asks a replacement's pauses for a duration
        what = "analysis" if step.analysis else "pause"
        await self._record("progressing", f"{what}_started", f"step {index}: {what} {duration} s")
        since = workflow.now()
        await self._wait(duration)
        if step.analysis is None or self._cancelled():
            return
        result = await _call(
            ACTIVITY_ANALYZE_ROLLOUT,
            AnalyzeInput(
                deployment_id="",
                candidate_workload_id=state.candidate,
                stable_workload_id=state.workload_id,
                since=since,
                until=workflow.now(),
                analysis=step.analysis,
            ),
            AnalyzeResult,
            summary=f"analyse the new version (workload {state.candidate})",
        )
        if result.passed:
            await self._record("progressing", "analysis_passed", f"step {index}: {result.summary}")
        elif not self._cancelled():
            state.cancelled_by = "analysis"
            state.reason = f"step {index}: analysis failed: {result.summary}"

    async def _hand_over(self) -> None:
        """All calls to the new version, the old kept for its window, then the workload itself
        restarts on the new artifact, takes its calls back, and the candidate goes."""
        state = self.state
        state.weight, state.step = 100, None
        await self._record(
            "finalizing", "switched", "the new version takes every call", switched=True
        )
        await workflow.sleep(TRAFFIC_SETTLE + timedelta(seconds=state.keep_old_seconds))
        await workflow.execute_activity(
            ACTIVITY_RESTART_ON_ARTIFACT,
            RestartInput(
                replacement_id=state.replacement_id,
                workload_id=state.workload_id,
                artifact_id=state.artifact_id,
                runtime=state.runtime,
                actor=state.actor,
            ),
            summary=f"restart workload {state.workload_id} on artifact {state.artifact_id}",
            start_to_close_timeout=WORKLOAD_CHANGE_LIMIT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=CATALOG_RETRY,
        )
        await self._record(
            "finalizing",
            "workload_restarted",
            "the old version is gone; the workload starts "
            "on the new artifact while the candidate serves",
        )
        outcome = await self._wait_running(state.workload_id, state.ready_timeout_seconds)
        if not outcome.running:
            # The candidate keeps every call (weight 100) until someone acts.
            reason = f"the workload did not run on the new artifact: {outcome.reason}"
            state.reason = reason
            await self._record("errored", "failed", reason, reason=reason)
            return
        state.weight = 0
        await self._record("finalizing", "handed_back", "the workload takes its calls again")
        await workflow.sleep(TRAFFIC_SETTLE)
        await self._delete_candidate()
        await self._record("completed", "completed", "the candidate is removed")

    async def _abort(self) -> None:
        state = self.state
        had_calls = state.weight > 0
        state.weight = 0
        status: ReplacementStatus = "cancelled"
        if state.cancelled_by in ("system", "analysis"):
            status = "errored"
        reason = state.reason or f"cancelled by {state.cancelled_by}"
        await self._record(
            "initializing" if state.status == "initializing" else "progressing",
            "aborted",
            f"every call back on the old version: {reason}",
            actor=state.cancelled_by or "system",
            reason=reason,
        )
        if had_calls:
            await workflow.sleep(TRAFFIC_SETTLE)
        await self._delete_candidate()
        await self._record(status, status, f"the candidate is removed: {reason}", reason=reason)

    # Helpers

    async def _wait_running(self, workload_id: str, timeout_seconds: int) -> WaitRunningResult:
        deadline = workflow.now() + timedelta(seconds=timeout_seconds)
        if workload_id == self.state.candidate and self.state.deadline is not None:
            deadline = self.state.deadline
        waiting = workflow.start_activity(
            ACTIVITY_WAIT_RUNNING,
            WaitRunningInput(workload_id=workload_id, deadline=deadline),
            result_type=WaitRunningResult,
            summary=f"wait until workload {workload_id} runs",
            start_to_close_timeout=timedelta(seconds=timeout_seconds + 120),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=CATALOG_RETRY,
            cancellation_type=workflow.ActivityCancellationType.TRY_CANCEL,
        )
        cancellable = self.state.status != "finalizing"
        await workflow.wait_condition(lambda: waiting.done() or (cancellable and self._cancelled()))
        if not waiting.done():
            waiting.cancel()
        try:
            result: WaitRunningResult = await waiting
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                return WaitRunningResult(running=False, reason=self.state.reason)
            return WaitRunningResult(running=False, reason=f"waiting failed: {error.cause}")
        return result

    async def _wait(self, seconds: int) -> None:
        """A durable timer a cancel ends early."""
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(self._cancelled, timeout=timedelta(seconds=seconds))

    async def _delete_candidate(self) -> None:
        await workflow.execute_activity(
            ACTIVITY_DELETE_WORKLOAD,
            WorkloadTargetInput(workload_id=self.state.candidate, actor="system"),
            summary=f"remove the candidate workload {self.state.candidate}",
            start_to_close_timeout=WORKLOAD_CHANGE_LIMIT,
            retry_policy=CATALOG_RETRY,
        )

    def _cancelled(self) -> bool:
        return self.state.cancelled_by is not None

    async def _record(
        self,
        status: ReplacementStatus,
        event: str,
        message: str,
        *,
        actor: str = "system",
        reason: str | None = None,
        switched: bool = False,
    ) -> None:
        state = self.state
        state.status = status
        await _call(
            ACTIVITY_RECORD,
            ReplacementRecordInput(
                replacement_id=state.replacement_id,
                status=status,
                step=state.step,
                weight=state.weight,
                event=event,
                message=message,
                actor=actor,
                reason=reason,
                switched=switched,
            ),
            summary=f"replacement {status}: {event}, weight {state.weight}%",
        )
