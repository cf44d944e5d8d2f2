"""What both entity workflows and their callers share: error types, retry policies, timeouts.

Callers (the API's lifecycle calls, the worker) reach workflows, Updates and activities by the
names in the `*_contract` modules, so nothing outside `workflows/` imports a workflow class.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

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
# Long activities heartbeat every second; a worker that dies is noticed after this, and the
# activity is retried on another worker.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# The longest a long-running activity (supervision, health monitoring) runs before it returns
# and is started again; it returns earlier whenever the workflow must act.
LONG_ACTIVITY_LEASE = timedelta(hours=24)
