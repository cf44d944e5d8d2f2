"""Errors a runtime raises. The workload activities turn them into retries or an `errored` state.

RuntimeError_ (base)
├── RuntimeUnavailableError  retryable: the engine or cluster cannot be reached right now
├── LogsNotReadyError        no log yet: every container asked for is still waiting to start
└── WorkloadFailedError      not retryable: the workload itself cannot run as specified
    ├── ImageNotFoundError   the image is not present and cannot be pulled
    ├── StartFailedError     the container cannot start (bad entrypoint/command, bad config)
    └── PolicyRejectedError  a cluster policy (admission webhook, quota, PodSecurity) refuses it
"""

from __future__ import annotations


class RuntimeError_(Exception):
    """Base of runtime errors."""


class RuntimeUnavailableError(RuntimeError_):
    """The container engine or cluster did not answer; try again later."""


class LogsNotReadyError(RuntimeError_):
    """No container asked for has started yet (image pull, init containers); the message is
    the cluster's reason. Not a failure: a later read has lines."""


class WorkloadFailedError(RuntimeError_):
    """The workload cannot run as specified; retrying will not help."""


class ImageNotFoundError(WorkloadFailedError):
    pass


class StartFailedError(WorkloadFailedError):
    pass


class PolicyRejectedError(WorkloadFailedError):
    """The cluster's admission control refused the workload's objects; the message names the
    policy. Retrying the same plan would be refused again."""
