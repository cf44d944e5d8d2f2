"""Errors a runtime raises. The workload activities turn them into retries or an `errored` state.

RuntimeError_ (base)
├── RuntimeUnavailableError  retryable: the engine or cluster cannot be reached right now
└── WorkloadFailedError      not retryable: the workload itself cannot run as specified
    ├── ImageNotFoundError   the image is not present and cannot be pulled
    └── StartFailedError     the container cannot start (bad entrypoint/command, bad config)
"""

from __future__ import annotations


class RuntimeError_(Exception):
    """Base of runtime errors."""


class RuntimeUnavailableError(RuntimeError_):
    """The container engine or cluster did not answer; try again later."""


class WorkloadFailedError(RuntimeError_):
    """The workload cannot run as specified; retrying will not help."""


class ImageNotFoundError(WorkloadFailedError):
    pass


class StartFailedError(WorkloadFailedError):
    pass
