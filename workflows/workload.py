"""The workload entity workflow: one per workload, from creation until it is deleted.

States: submitted -> initializing -> running; stopping -> stopped; errored (sticky until a
start or stop). Start, stop, scale and delete arrive as Updates; their validators reject
invalid transitions before anything is written. Every status change is written to the catalog
by an activity before the workflow itself considers it done, so API reads never get ahead of
what is durable.

While a generation runs, one long `supervise` activity probes and restarts containers and only
returns when something the workflow must act on happens (all replicas ready, or a failure), so
an idle running workload adds no history events. It runs on the supervision task queue, where
each worker takes at most its capacity; when it starts it signals which worker has it, and the
workflow ends it by a `release_supervision` on that worker's own queue, at once, instead of a
cancellation that only a heartbeat would carry. A supervision no worker takes in time is
reported (an event and a status reason naming the limit) and keeps waiting for one.

Updates are validated before they are accepted, and checked again under the lock: another
Update may have changed the state while this one waited for it, and what no longer applies is
refused (409), never applied twice. Runtime calls under the lock give up after a bound; a
failure records `errored` and the workflow stays alive for start, stop and delete.

Why one module of this length: the state machine's handlers, main loop and lock discipline
read top to bottom in one place; split, the ordering guarantees would be hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
)

with workflow.unsafe.imports_passed_through():
    from models.plan import RunPlan
    from models.status import WorkloadStatus
    from workflows.common import (
        CATALOG_RETRY,
        HEARTBEAT_TIMEOUT,
        INVALID_TRANSITION,
        LOCKED_RUNTIME_LIMIT,
        LONG_ACTIVITY_LEASE,
        RUNTIME_RETRY,
        failure_message,
        not_started_in_time,
        supervision_queue,
    )
    from workflows.search_attributes import STATUS, upsert
    from workflows.workload_contract import (
        ACTIVITY_BEGIN_GENERATION,
        ACTIVITY_FORGET_WORKLOAD,
        ACTIVITY_HALT_CONTAINERS,
        ACTIVITY_PREPARE_PLAN,
        ACTIVITY_RECORD_SCALE,
        ACTIVITY_RECORD_STATUS,
        ACTIVITY_RELEASE_SUPERVISION,
        ACTIVITY_REMOVE_CONTAINERS,
        ACTIVITY_SUPERVISE,
        ACTIVITY_WITHDRAW_REPLICAS,
        QUERY_CURRENT,
        SIGNAL_SUPERVISED,
        UPDATE_DELETE,
        UPDATE_SCALE,
        UPDATE_START,
        UPDATE_STOP,
        WORKFLOW_TYPE,
        BeginGenerationResult,
        PreparePlanInput,
        RecordScaleInput,
        RecordStatusInput,
        RecordStatusResult,
        ScaleInput,
        SupervisedInput,
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
# Supervision on its own queue, released on its worker's queue; Updates re-checked under the
# lock; runtime calls under the lock bounded.
SUPERVISION_PATCH = "supervision-queue-release-and-safe-updates"
# Status records and the plan run as local activities: in the worker that runs the workflow
# task, with no round trip through the Temporal server (about 30 ms less each on the way to
# `running`). Both are a short catalog transaction; see `_catalog` for what a slow one costs.
LOCAL_CATALOG_PATCH = "status-and-plan-as-local-activities"
# A new generation's plan is prepared while its `initializing` is recorded, not after.
PLAN_BESIDE_RECORD_PATCH = "plan-beside-the-initializing-record"
# A local activity's retries are made in the worker up to this backoff, then on a timer.
LOCAL_RETRIES = timedelta(seconds=2)
# How long a supervision waits for a worker with room before the workload says so; then it
# keeps waiting, in longer rounds (a waiting task is taken as soon as a slot frees anyway).
CAPACITY_WAIT = timedelta(seconds=20)
CAPACITY_WAIT_AGAIN = timedelta(minutes=5)
# A release must reach its worker this soon, else that worker is taken for gone and the
# supervision is cancelled instead (which waits for its heartbeat timeout at worst).
RELEASE_REACH = timedelta(seconds=5)
RELEASE_LIMIT = timedelta(minutes=5)  # an image pull under way finishes first
RELEASE_SETTLE = timedelta(seconds=10)
# A supervision says where it runs as soon as it starts (a starting one after creating its
# containers); a stop that comes first waits this long for that, since a cancellation
# instead reaches the supervision only with its next heartbeat, up to 8 s later.
ANNOUNCE_WAIT = timedelta(seconds=2)
ANNOUNCE_WAIT_PATCH = "release-waits-for-the-supervision-to-announce-itself"
# A starting supervision writes `running` beside the ready replicas (only over `initializing`
# of its generation); the workflow then records nothing more.
RUNNING_BY_SUPERVISION_PATCH = "running-recorded-by-the-supervision"
# `initializing` recorded and the plan prepared in one local activity (one transaction).
BEGIN_IN_ONE_PATCH = "initializing-and-plan-in-one-local-activity"


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
        self._teardown_error: str | None = None
        # The running supervise activity: its id, and where it said it runs.
        self._supervisions = 0
        self._supervision_id = ""
        self._supervised: SupervisedInput | None = None
        self._waiting_for_capacity = False

    @workflow.run
    async def run(self, input: WorkloadInput) -> None:
        while True:
            if self.state.desired == "deleted":
                if await self._tear_down():
                    break
            elif self.state.desired == "running":
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

    @workflow.signal(name=SIGNAL_SUPERVISED)
    def supervised(self, input: SupervisedInput) -> None:
        """A supervise activity started on a worker: where to release it."""
        if input.activity_id != self._supervision_id:
            return  # about an earlier supervision
        if self._supervised is None or input.attempt >= self._supervised.attempt:
            self._supervised = input

    # Updates

    @workflow.update(name=UPDATE_START)
    async def start(self, input: TransitionInput) -> TransitionResult:
        checked = workflow.patched(SUPERVISION_PATCH)
        if checked:
            await workflow.wait_condition(lambda: not self._stopping())
        async with self._lock:
            if checked:
                self._check_start()  # again: the state may have moved on meanwhile
            self.state.desired = "running"
            await self._begin_generation(input.actor)
        return self._result()

    @start.validator
    def _validate_start(self, input: TransitionInput) -> None:
        if not self._stopping():
            self._check_start()
        # else a stop is under way (perhaps recorded, and not yet seen here): this start
        # waits for it to finish, then starts.

    def _check_start(self) -> None:
        self._require({"stopped", "errored"}, "started")
        if self.state.desired == "running":
            raise ApplicationError("a start is already under way", type=INVALID_TRANSITION)

    def _stopping(self) -> bool:
        return self.state.desired == "stopped" and self.state.status == "stopping"

    @workflow.update(name=UPDATE_STOP)
    async def stop(self, input: TransitionInput) -> TransitionResult:
        async with self._lock:
            if workflow.patched(SUPERVISION_PATCH):
                self._validate_stop(input)  # again: the state may have moved on meanwhile
            self.state.desired = "stopped"
            await self._record(
                "stopping", "stop_requested", f"stop requested by {input.actor}", input.actor
            )
        return self._result()

    @stop.validator
    def _validate_stop(self, input: TransitionInput) -> None:
        if self.state.desired == "running" and self.state.status in ("stopped", "errored"):
            return  # a start is under way: this stop follows it
        self._require({"submitted", "initializing", "running", "errored"}, "stopped")
        # Only an errored workload is both meant to be stopped and still to be stopped.
        if self.state.desired == "stopped" and self.state.status != "errored":
            raise ApplicationError("a stop is already under way", type=INVALID_TRANSITION)

    @workflow.update(name=UPDATE_SCALE)
    async def scale(self, input: ScaleInput) -> TransitionResult:
        """The one writer of replica counts: the catalog row, then the running plan."""
        async with self._lock:
            if workflow.patched(SUPERVISION_PATCH):
                self._validate_scale(input)  # again: the state may have moved on meanwhile
            await _catalog(
                ACTIVITY_RECORD_SCALE,
                RecordScaleInput(
                    workload_id=self.state.workload_id,
                    actor=input.actor,
                    replicas=input.replicas,
                    reason=input.reason,
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
        self._teardown_error = None
        await workflow.wait_condition(lambda: self._torn_down or self._teardown_error is not None)
        if self._teardown_error is not None:
            # Not a 409: the workload stays, errored, and a later delete tries again.
            raise ApplicationError(self._teardown_error)
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
        if not workflow.patched(SUPERVISION_PATCH):
            return await self._supervise_on_main_queue(plan)
        self._supervisions += 1
        self._supervision_id = f"supervise-{self._supervisions}"
        self._supervised = None
        supervise = self._supervise_input(plan)
        handle = workflow.start_activity(
            ACTIVITY_SUPERVISE,
            supervise,
            result_type=SuperviseResult,
            activity_id=self._supervision_id,
            task_queue=supervision_queue(workflow.info().task_queue),
            summary=_supervision_summary(supervise),
            schedule_to_start_timeout=(
                CAPACITY_WAIT_AGAIN if self._waiting_for_capacity else CAPACITY_WAIT
            ),
            start_to_close_timeout=LONG_ACTIVITY_LEASE,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RUNTIME_RETRY,
            # Why wait: containers must not be touched by a still-running supervisor once the
            # workflow moves on to stop or remove them.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        while True:
            await workflow.wait_condition(
                lambda: (
                    handle.done()
                    or self._supervision_must_end()
                    or (self._waiting_for_capacity and self._supervised is not None)
                )
            )
            if handle.done() or self._supervision_must_end():
                break
            await self._capacity_found()
        if not handle.done():
            await self._release(handle)
        try:
            result: SuperviseResult = await handle
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                return None
            if not_started_in_time(error):
                await self._capacity_lacking()
                return None
            return SuperviseResult(outcome="failed", reason=failure_message(error))
        return None if result.outcome == "released" else result

    async def _supervise_on_main_queue(self, plan: RunPlan) -> SuperviseResult | None:
        """As recorded before SUPERVISION_PATCH: on the main queue, ended by cancellation."""
        handle = workflow.start_activity(
            ACTIVITY_SUPERVISE,
            self._supervise_input(plan),
            result_type=SuperviseResult,
            start_to_close_timeout=LONG_ACTIVITY_LEASE,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RUNTIME_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await workflow.wait_condition(lambda: handle.done() or self._supervision_must_end())
        if not handle.done():
            handle.cancel()
        try:
            result: SuperviseResult = await handle
            return result
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                return None
            return SuperviseResult(outcome="failed", reason=failure_message(error))

    def _supervise_input(self, plan: RunPlan) -> SuperviseInput:
        return SuperviseInput(
            plan=plan,
            wait_for_ready=self.state.status == "initializing",
            initializing_since=self.state.initializing_since,
        )

    def _supervision_must_end(self) -> bool:
        return (
            self.state.desired != "running"
            or self._resupervise
            or self._continue_as_new_suggested()
        )

    async def _release(self, handle: workflow.ActivityHandle[SuperviseResult]) -> None:
        """End the supervision now through its worker's own queue; if that worker does not
        answer, cancel it (the cancellation completes with a heartbeat, or its timeout)."""
        if self._supervised is None and workflow.patched(ANNOUNCE_WAIT_PATCH):
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._supervised is not None or handle.done(),
                    timeout=ANNOUNCE_WAIT,
                )
        where = self._supervised
        if where is not None and where.task_queue and not handle.done():
            try:
                await workflow.execute_activity(
                    ACTIVITY_RELEASE_SUPERVISION,
                    WorkloadIdInput(workload_id=self.state.workload_id),
                    task_queue=where.task_queue,
                    summary=f"release the supervision on worker {where.worker}",
                    schedule_to_start_timeout=RELEASE_REACH,
                    start_to_close_timeout=RELEASE_LIMIT,
                    retry_policy=RetryPolicy(maximum_attempts=1),
                )
            except ActivityError:
                pass  # that worker is gone
            else:
                # Released, it returns on its own (unless it was retried elsewhere meanwhile).
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(handle.done, timeout=RELEASE_SETTLE)
        if not handle.done():
            handle.cancel()

    async def _capacity_lacking(self) -> None:
        """No worker took the supervision in time: say so once, then keep waiting."""
        # Time spent waiting for a worker does not count against the ready timeout: without
        # a start time, the supervision counts from when a worker takes it.
        self.state.initializing_since = None
        if self._waiting_for_capacity:
            return
        self._waiting_for_capacity = True
        seconds = int(CAPACITY_WAIT.total_seconds())
        reason = (
            f"no worker had room to supervise this workload for {seconds} s: every worker on "
            f"task queue '{supervision_queue(workflow.info().task_queue)}' runs as many as "
            "WAPI_SUPERVISION_CAPACITY allows, or none is running; waiting for one"
        )
        async with self._lock:
            if self.state.desired == "running":
                await self._record(self.state.status, "supervision_waiting", reason, reason=reason)

    async def _capacity_found(self) -> None:
        self._waiting_for_capacity = False
        worker = self._supervised.worker if self._supervised else "?"
        async with self._lock:
            if self.state.desired == "running":
                await self._record(
                    self.state.status, "supervision_resumed", f"worker {worker} supervises it"
                )

    async def _after_supervision(self, result: SuperviseResult) -> None:
        async with self._lock:
            if self.state.desired != "running":
                return
            if result.outcome == "ready" and self.state.status == "initializing":
                if result.running_recorded and workflow.patched(RUNNING_BY_SUPERVISION_PATCH):
                    self._recorded("running")
                else:
                    await self._record("running", "running", "all replicas are ready")
            elif result.outcome == "failed":
                self.state.desired = "stopped"
                reason = result.reason or "the workload failed"
                await self._record("errored", "errored", reason, reason=reason)
                # Keep the stopped containers: their logs explain the failure.
                if failure := await self._containers(ACTIVITY_HALT_CONTAINERS):
                    reason += f"; its containers could not be stopped: {failure}"
                    await self._record("errored", "halt_failed", reason, reason=reason)

    async def _begin_generation(self, actor: str) -> bool:
        """Start a new generation; False if the workload is gone or cannot be planned."""
        self.state.generation += 1
        self.state.initializing_since = workflow.now()
        generation = self.state.generation
        if workflow.patched(BEGIN_IN_ONE_PATCH):
            return await self._begin_in_one(actor)
        planning: asyncio.Task[RunPlan] | None = None
        if workflow.patched(PLAN_BESIDE_RECORD_PATCH):
            # The plan reads the artifact and the runtime, not the status: both at once.
            planning = asyncio.create_task(self._plan(generation))
        if not await self._record(
            "initializing", "starting", f"starting generation {generation}", actor
        ):
            if planning is not None:
                with contextlib.suppress(ActivityError):  # it found the workload gone too
                    await planning
            self._gone = True
            self.state.desired = "deleted"
            return False
        try:
            self.state.plan = await (planning or self._plan(generation))
        except ActivityError as error:
            self.state.desired = "stopped"
            reason = failure_message(error)
            await self._record("errored", "errored", reason, reason=reason)
            return False
        return True

    async def _begin_in_one(self, actor: str) -> bool:
        generation = self.state.generation
        # Retried until the catalog answers, as any status record; what no retry can fix
        # comes back as `failure`.
        begun = await _catalog(
            ACTIVITY_BEGIN_GENERATION,
            self._status_input(
                "initializing", "starting", f"starting generation {generation}", actor
            ),
            BeginGenerationResult,
            summary=f"record initializing; plan generation {generation}",
            local=True,
        )
        if not begun.exists:
            self._gone = True
            self.state.desired = "deleted"
            return False
        self._recorded("initializing")
        if begun.plan is None:
            self.state.desired = "stopped"
            reason = begun.failure or "the generation could not be planned"
            await self._record("errored", "errored", reason, reason=reason)
            return False
        self.state.plan = begun.plan
        return True

    async def _plan(self, generation: int) -> RunPlan:
        return await _catalog(
            ACTIVITY_PREPARE_PLAN,
            PreparePlanInput(workload_id=self.state.workload_id, generation=generation),
            RunPlan,
            summary=f"plan generation {generation}: images, replicas, ports, secrets",
            local=workflow.patched(LOCAL_CATALOG_PATCH),
            retry_policy=RUNTIME_RETRY,
            schedule_to_close_timeout=LOCKED_RUNTIME_LIMIT,
        )

    async def _finish_stop(self) -> None:
        async with self._lock:
            if self.state.desired != "stopped" or self.state.status != "stopping":
                return
            await self._drain()
            if failure := await self._containers(ACTIVITY_REMOVE_CONTAINERS):
                reason = f"the containers could not be removed: {failure}; stop again to retry"
                await self._record("errored", "stop_failed", reason, reason=reason)
                return
            await self._record("stopped", "stopped", "all containers removed")

    async def _tear_down(self) -> bool:
        """Remove everything; False (and errored, not deleted) if the containers stay."""
        async with self._lock:
            if not self._gone:
                await self._drain()
                if failure := await self._containers(ACTIVITY_REMOVE_CONTAINERS):
                    reason = f"the containers could not be removed: {failure}; delete again"
                    self.state.desired = "stopped"
                    await self._record("errored", "delete_failed", reason, reason=reason)
                    self._teardown_error = reason
                    return False
                await _catalog(
                    ACTIVITY_FORGET_WORKLOAD,
                    WorkloadIdInput(workload_id=self.state.workload_id),
                    summary="forget the workload",
                )
            self._torn_down = True
            return True

    async def _drain(self) -> None:
        """Take the replicas out of the gateways' tables before their containers go, so no new
        request is sent to a container that is being removed."""
        # Added after the first release; histories recorded before it have no drain step.
        if not workflow.patched(DRAIN_PATCH):
            return
        await _catalog(
            ACTIVITY_WITHDRAW_REPLICAS,
            WorkloadIdInput(workload_id=self.state.workload_id),
            summary="drain: take the replicas out of the gateways",
        )
        await workflow.sleep(DRAIN_GRACE, summary="drain: let requests in flight finish")

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
            self._status_input(status, event, message, actor, reason),
            RecordStatusResult,
            summary=f"record {status}: {event}",
            local=workflow.patched(LOCAL_CATALOG_PATCH),
        )
        self._recorded(status, reason)
        return result.exists

    def _status_input(
        self,
        status: WorkloadStatus,
        event: str,
        message: str,
        actor: str,
        reason: str | None = None,
    ) -> RecordStatusInput:
        return RecordStatusInput(
            workload_id=self.state.workload_id,
            status=status,
            generation=self.state.generation,
            actor=actor,
            event=event,
            message=message,
            reason=reason,
        )

    def _recorded(self, status: WorkloadStatus, reason: str | None = None) -> None:
        """What the catalog now says, in the workflow's state and search attributes."""
        self.state.status = status
        self.state.reason = reason
        upsert({STATUS: status})

    async def _containers(self, activity: str) -> str | None:
        """Halt or remove the containers; None when done, else why not (after retries for
        LOCKED_RUNTIME_LIMIT: the lock is held)."""
        bounded = workflow.patched(SUPERVISION_PATCH)
        try:
            await workflow.execute_activity(
                activity,
                WorkloadIdInput(workload_id=self.state.workload_id),
                summary=_CONTAINER_SUMMARIES.get(activity),
                start_to_close_timeout=timedelta(minutes=5),
                schedule_to_close_timeout=LOCKED_RUNTIME_LIMIT if bounded else None,
                retry_policy=RUNTIME_RETRY,
            )
        except ActivityError as error:
            if not bounded:
                raise
            return failure_message(error)
        return None

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


_CONTAINER_SUMMARIES = {
    ACTIVITY_HALT_CONTAINERS: "halt the containers (kept for their logs)",
    ACTIVITY_REMOVE_CONTAINERS: "remove the containers",
}


def _supervision_summary(input: SuperviseInput) -> str:
    """What the Temporal UI's timeline shows for a supervision (user metadata)."""
    replicas = sum(group.replicas for group in input.plan.groups)
    if input.wait_for_ready:
        return f"pull images, start and probe {replicas} replica(s) until ready"
    return f"supervise {replicas} replica(s): probe, restart on crash"


async def _catalog(
    activity: str,
    arg: BaseModel,
    result_type: type[R] | None = None,
    *,
    summary: str | None = None,
    local: bool = False,
    retry_policy: RetryPolicy = CATALOG_RETRY,
    schedule_to_close_timeout: timedelta | None = None,
) -> R:
    """A catalog write (or read) by activity name; retried until the database answers (by
    default).

    A `local` one runs in this worker within the workflow task. Why that is safe only for a
    short transaction: while it runs, the task stays open and new Updates and signals wait
    (the SDK hands them over when it heartbeats the task, every 8 s); retries further apart
    than LOCAL_RETRIES wait on a timer instead, with the task closed."""
    options: dict[str, Any] = {
        "result_type": result_type,
        "summary": summary,
        "start_to_close_timeout": timedelta(seconds=30),
        "schedule_to_close_timeout": schedule_to_close_timeout,
        "retry_policy": retry_policy,
    }
    if local:
        result: R = await workflow.execute_local_activity(
            activity, arg, local_retry_threshold=LOCAL_RETRIES, **options
        )
    else:
        result = await workflow.execute_activity(activity, arg, **options)
    return result
