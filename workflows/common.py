"""What both entity workflows and their callers share: error types, retry policies, timeouts.

Callers (the API's lifecycle calls, the worker) reach workflows, Updates and activities by the
names in the `*_contract` modules, so nothing outside `workflows/` imports a workflow class.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

R = TypeVar("R")

# `ApplicationError.type` of an Update rejected because of the entity's state (the API's 409).
INVALID_TRANSITION = "InvalidTransition"
# `ApplicationError.type` of an activity failure that retrying cannot fix.
WORKLOAD_FAILED = "WorkloadFailed"

# Catalog writes must eventually succeed; a database outage only delays the workflow.
CATALOG_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
# Runtime calls retry while the engine is unreachable, but not when the workload cannot run.
RUNTIME_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[WORKLOAD_FAILED],
)
# A worker that dies is noticed after this, and its long activities are retried on another
# worker. Workers send a heartbeat at most every 0.8 x this (bench/heartbeats.py measures
# what they cost); stopping a workload does not wait for one (see `supervision_queue`).
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# Under an entity's lock, runtime calls give up after this: an engine outage must not hold
# the lock (and so every Update) forever. The entity records `errored` and stays alive.
LOCKED_RUNTIME_LIMIT = timedelta(minutes=2)
# The longest a long-running activity (supervision, health monitoring) runs before it returns
# and is started again; it returns earlier whenever the workflow must act.
LONG_ACTIVITY_LEASE = timedelta(hours=24)


def supervision_queue(task_queue: str) -> str:
    """The task queue of long activities (supervision, health monitoring) beside `task_queue`.

    Each worker takes at most its capacity of them (`WAPI_SUPERVISION_CAPACITY`), so they never
    starve the short activities on the main queue. A supervising activity tells its workflow
    the queue of its own worker (`worker_queue`), where `release_supervision` ends it at once:
    stopping a workload never waits for a heartbeat to carry a cancellation.
    """
    return f"{task_queue}-supervision"


def worker_queue(task_queue: str, worker: str) -> str:
    """The task queue only the worker named `worker` polls."""
    return f"{task_queue}-worker-{worker}"


async def call_activity(
    activity: str,
    arg: BaseModel,
    result_type: type[R] | None = None,
    *,
    summary: str | None = None,
) -> R:
    """An activity by name, from workflow code, retried while the catalog or Temporal is away."""
    result: R = await workflow.execute_activity(
        activity,
        arg,
        result_type=result_type,
        summary=summary,
        start_to_close_timeout=timedelta(minutes=2),
        retry_policy=CATALOG_RETRY,
    )
    return result


def not_started_in_time(error: ActivityError) -> bool:
    """No worker took the activity before its schedule-to-start timeout (none has room)."""
    cause = error.cause
    return isinstance(cause, ActivityTimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START


def failure_message(error: ActivityError) -> str:
    """The innermost message of an activity failure, for a status reason."""
    cause = error.cause
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    return str(getattr(cause, "message", None) or cause or error)
