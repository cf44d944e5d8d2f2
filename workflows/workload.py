"""The workload entity workflow: one per workload, from creation until it is deleted.

States: submitted -> initializing -> running; stopping -> stopped; errored (sticky until a
start or stop). Start, stop, scale and delete arrive as Updates; their validators reject
invalid transitions before anything is written. Every status change is written to the catalog
by an activity before the workflow itself considers it done, so API reads never get ahead of
what is durable.

While a generation runs, one long `supervise` activity probes and restarts containers and only
returns when something the workflow must act on happens (all replicas ready, or a failure), so
an idle running workload adds no history events.

Why one module of this length: the state machine's handlers, main loop and lock discipline
read top to bottom in one place; split, the ordering guarantees would be hidden.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from models.plan import RunPlan
    from models.status import WorkloadStatus
    from workflows.common import (
        CATALOG_RETRY,
        HEARTBEAT_TIMEOUT,
        INVALID_TRANSITION,
        LONG_ACTIVITY_LEASE,
        RUNTIME_RETRY,
    )
    from workflows.workload_contract import (
        ACTIVITY_FORGET_WORKLOAD,
        ACTIVITY_HALT_CONTAINERS,
        ACTIVITY_PREPARE_PLAN,
        ACTIVITY_RECORD_SCALE,
        ACTIVITY_RECORD_STATUS,
        ACTIVITY_REMOVE_CONTAINERS,
        ACTIVITY_SUPERVISE,
        ACTIVITY_WITHDRAW_REPLICAS,
        QUERY_CURRENT,
        UPDATE_DELETE,
        UPDATE_SCALE,
        UPDATE_START,
        UPDATE_STOP,
        WORKFLOW_TYPE,
        PreparePlanInput,
        RecordScaleInput,
        RecordStatusInput,
        RecordStatusResult,
        ScaleInput,
        SuperviseInput,
        SuperviseResult,
        TransitionInput,
        TransitionResult,
        WorkloadIdInput,
        WorkloadInput,
        WorkloadState,
    )

R = TypeVar("R")

# Gateways reload their replica tables twice a second; this leaves time for that and for
# requests already in flight to finish.
DRAIN_GRACE = timedelta(seconds=2)
DRAIN_PATCH = "drain-before-removing-containers"


@workflow.defn(name=WORKFLOW_TYPE)
class WorkloadWorkflow:
    @workflow.init
    def __init__(self, input: WorkloadInput) -> None:
        if input.state is not None:
            self.state = input.state
        else:
            idle = input.status in ("stopped", "errored")
            self.state = WorkloadState(
                workload_id=input.workload_id,
                status=input.status if idle else "submitted",
                desired="stopped" if idle else "running",
            )
        # Handlers and the main loop both record transitions; the lock keeps them in order.
        self._lock = asyncio.Lock()
        self._resupervise = False
        self._gone = False
        self._torn_down = False

    @workflow.run
    async def run(self, input: WorkloadInput) -> None:
        while True:
            if self.state.desired == "deleted":
                await self._tear_down()
                break
            if self.state.desired == "running":
                await self._run_generation()
            elif self.state.status == "stopping":
                await self._finish_stop()
            else:
                await workflow.wait_condition(
                    lambda: (
                        self.state.desired != "stopped"
                        or self.state.status == "stopping"
                        or self._continue_as_new_suggested()
                    )
                )
            # (mypy narrows `desired` above, but handlers may have changed it meanwhile)
            if self._continue_as_new_suggested() and not self._deleting():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    WorkloadInput(workload_id=self.state.workload_id, state=self.state)
                )
        await workflow.wait_condition(workflow.all_handlers_finished)

    @workflow.query(name=QUERY_CURRENT)
    def current(self) -> WorkloadState:
        return self.state

    # Updates

    @workflow.update(name=UPDATE_START)
    async def start(self, input: TransitionInput) -> TransitionResult:
        async with self._lock:
            self.state.desired = "running"
            await self._begin_generation(input.actor)
        return self._result()

    @start.validator
    def _validate_start(self, input: TransitionInput) -> None:
        self._require({"stopped", "errored"}, "started")

    @workflow.update(name=UPDATE_STOP)
    async def stop(self, input: TransitionInput) -> TransitionResult:
        async with self._lock:
            self.state.desired = "stopped"
            await self._record(
                "stopping", "stop_requested", f"stop requested by {input.actor}", input.actor
            )
        return self._result()

    @stop.validator
    def _validate_stop(self, input: TransitionInput) -> None:
        self._require({"submitted", "initializing", "running", "errored"}, "stopped")

    @workflow.update(name=UPDATE_SCALE)
    async def scale(self, input: ScaleInput) -> TransitionResult:
        """The one writer of replica counts: the catalog row, then the running plan."""
        async with self._lock:
            await _catalog(
                ACTIVITY_RECORD_SCALE,
                RecordScaleInput(
                    workload_id=self.state.workload_id, actor=input.actor, replicas=input.replicas
                ),
            )
            plan = self.state.plan
            if plan is not None and self.state.status in ("initializing", "running"):
                groups = [
                    group.model_copy(
                        update={"replicas": input.replicas.get(group.name, group.replicas)}
                    )
                    for group in plan.groups
                ]
                self.state.plan = plan.model_copy(update={"groups": groups})
                self._resupervise = True
        return self._result()

    @scale.validator
    def _validate_scale(self, input: ScaleInput) -> None:
        self._require({"submitted", "initializing", "running", "stopped", "errored"}, "scaled")
        # Group names are checked against the artifact by the API; a running plan knows them too.
        if self.state.plan is not None:
            unknown = sorted(set(input.replicas) - {g.name for g in self.state.plan.groups})
            if unknown:
                raise ApplicationError(
                    f"no container group named {unknown}", type=INVALID_TRANSITION
                )

    @workflow.update(name=UPDATE_DELETE)
    async def delete(self, input: TransitionInput) -> TransitionResult:
        self.state.desired = "deleted"
        await workflow.wait_condition(lambda: self._torn_down)
        return self._result()

    @delete.validator
    def _validate_delete(self, input: TransitionInput) -> None:
        if self.state.desired == "deleted":
            raise ApplicationError("the workload is already being deleted", type=INVALID_TRANSITION)

    # Main loop steps

    async def _run_generation(self) -> None:
        async with self._lock:
            # Re-checked under the lock: a `start` handler may have begun a generation while
            # this loop was waiting for the lock.
            if self.state.desired != "running":
                return
            if self.state.status not in (
                "initializing",
                "running",
            ) and not await self._begin_generation("system"):
                return
        while self.state.desired == "running" and not self._continue_as_new_suggested():
            result = await self._supervise_once()
            if result is not None:
                await self._after_supervision(result)

    async def _supervise_once(self) -> SuperviseResult | None:
        """Run `supervise` until it reports, or until the workflow needs it to stop."""
        plan = self.state.plan
        assert plan is not None
        self._resupervise = False
        handle = workflow.start_activity(
            ACTIVITY_SUPERVISE,
            SuperviseInput(
                plan=plan,
                wait_for_ready=self.state.status == "initializing",
                initializing_since=self.state.initializing_since,
            ),
            result_type=SuperviseResult,
            start_to_close_timeout=LONG_ACTIVITY_LEASE,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RUNTIME_RETRY,
            # Why wait: containers must not be touched by a still-running supervisor once the
            # workflow moves on to stop or remove them.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await workflow.wait_condition(
            lambda: (
                handle.done()
                or self.state.desired != "running"
                or self._resupervise
                or self._continue_as_new_suggested()
            )
        )
        if not handle.done():
            handle.cancel()
        try:
            result: SuperviseResult = await handle
            return result
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                return None
            return SuperviseResult(outcome="failed", reason=_failure_message(error))

    async def _after_supervision(self, result: SuperviseResult) -> None:
        async with self._lock:
            if self.state.desired != "running":
                return
            if result.outcome == "ready" and self.state.status == "initializing":
                await self._record("running", "running", "all replicas are ready")
            elif result.outcome == "failed":
                self.state.desired = "stopped"
                reason = result.reason or "the workload failed"
                await self._record("errored", "errored", reason, reason=reason)
                # Keep the stopped containers: their logs explain the failure.
                await self._containers(ACTIVITY_HALT_CONTAINERS)

    async def _begin_generation(self, actor: str) -> bool:
        """Start a new generation; False if the workload is gone or cannot be planned."""
        self.state.generation += 1
        self.state.initializing_since = workflow.now()
        generation = self.state.generation
        if not await self._record(
            "initializing", "starting", f"starting generation {generation}", actor
        ):
            self._gone = True
            self.state.desired = "deleted"
            return False
        try:
            self.state.plan = await workflow.execute_activity(
                ACTIVITY_PREPARE_PLAN,
                PreparePlanInput(workload_id=self.state.workload_id, generation=generation),
                result_type=RunPlan,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RUNTIME_RETRY,
            )
        except ActivityError as error:
            self.state.desired = "stopped"
            reason = _failure_message(error)
            await self._record("errored", "errored", reason, reason=reason)
            return False
        return True

    async def _finish_stop(self) -> None:
        async with self._lock:
            if self.state.desired != "stopped" or self.state.status != "stopping":
                return
            await self._drain()
            await self._containers(ACTIVITY_REMOVE_CONTAINERS)
            await self._record("stopped", "stopped", "all containers removed")

    async def _tear_down(self) -> None:
        async with self._lock:
            if not self._gone:
                await self._drain()
                await self._containers(ACTIVITY_REMOVE_CONTAINERS)
                await _catalog(
                    ACTIVITY_FORGET_WORKLOAD, WorkloadIdInput(workload_id=self.state.workload_id)
                )
            self._torn_down = True

    async def _drain(self) -> None:
        """Take the replicas out of the gateways' tables before their containers go, so no new
        request is sent to a container that is being removed."""
        # Added after the first release; histories recorded before it have no drain step.
        if not workflow.patched(DRAIN_PATCH):
            return
        await _catalog(
            ACTIVITY_WITHDRAW_REPLICAS, WorkloadIdInput(workload_id=self.state.workload_id)
        )
        await workflow.sleep(DRAIN_GRACE)

    # Helpers

    async def _record(
        self,
        status: WorkloadStatus,
        event: str,
        message: str,
        actor: str = "system",
        *,
        reason: str | None = None,
    ) -> bool:
        result = await _catalog(
            ACTIVITY_RECORD_STATUS,
            RecordStatusInput(
                workload_id=self.state.workload_id,
                status=status,
                generation=self.state.generation,
                actor=actor,
                event=event,
                message=message,
                reason=reason,
            ),
            RecordStatusResult,
        )
        self.state.status = status
        self.state.reason = reason
        return result.exists

    async def _containers(self, activity: str) -> None:
        await workflow.execute_activity(
            activity,
            WorkloadIdInput(workload_id=self.state.workload_id),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RUNTIME_RETRY,
        )

    def _require(self, allowed: set[str], action: str) -> None:
        if self.state.desired == "deleted":
            raise ApplicationError("the workload is being deleted", type=INVALID_TRANSITION)
        if self.state.status not in allowed:
            raise ApplicationError(
                f"the workload is {self.state.status} and cannot be {action}",
                type=INVALID_TRANSITION,
            )

    def _result(self) -> TransitionResult:
        return TransitionResult(status=self.state.status, generation=self.state.generation)

    def _deleting(self) -> bool:
        return self.state.desired == "deleted"

    def _continue_as_new_suggested(self) -> bool:
        return workflow.info().is_continue_as_new_suggested()


async def _catalog(activity: str, arg: BaseModel, result_type: type[R] | None = None) -> R:
    """A catalog write (or read) by activity name; retried until the database answers."""
    result: R = await workflow.execute_activity(
        activity,
        arg,
        result_type=result_type,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=CATALOG_RETRY,
    )
    return result


def _failure_message(error: ActivityError) -> str:
    cause = error.cause
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    return str(getattr(cause, "message", None) or cause or error)
