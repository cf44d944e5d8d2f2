"""The HTTP status of each kind of domain error. Apart from `api/errors.py` so that the gateway,
which answers without a web framework, maps errors the same way without importing one."""

from __future__ import annotations

from services.errors import (
    AuthenticationError,
    BadGatewayError,
    ConflictError,
    DomainError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PreconditionFailedError,
    TooManyRequestsError,
    UnavailableError,
    UpstreamTimeoutError,
)

STATUS: dict[type[DomainError], int] = {
    InvalidInputError: 422,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    PreconditionFailedError: 412,
    PayloadTooLargeError: 413,
    TooManyRequestsError: 429,
    UnavailableError: 503,
    BadGatewayError: 502,
    UpstreamTimeoutError: 504,
}


def status_for(error: DomainError) -> int:
    return next(code for kind, code in STATUS.items() if isinstance(error, kind))
