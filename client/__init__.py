"""A typed Python client for the Workload API, blocking (`Client`) and asyncio (`AsyncClient`).

It speaks the server's own pydantic models (`models/`), retries 503 and 429 after `Retry-After`,
raises one error class per kind of failure (`client.errors`), iterates over pages
(`client.workloads.list.all(...)`) and waits for lifecycles (`wait_until`, `wait_for_swap`).
"""

from client.client import AsyncClient, Client
from client.contexts import Connection, resolve
from client.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    ConnectionFailedError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    ServerError,
    TooManyRequestsError,
    UnavailableError,
    WaitFailedError,
    WaitTimeoutError,
    WapiError,
)
from client.transport import RetryPolicy

__all__ = [
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "Connection",
    "ConnectionFailedError",
    "InvalidInputError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "RetryPolicy",
    "ServerError",
    "TooManyRequestsError",
    "UnavailableError",
    "WaitFailedError",
    "WaitTimeoutError",
    "WapiError",
    "resolve",
]
