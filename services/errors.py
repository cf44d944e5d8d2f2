"""Domain errors raised by services; `api.errors` maps each family to one HTTP status.

DomainError
├── InvalidInputError      422  (carries the JSON path of every bad field)
├── AuthenticationError    401
├── PermissionDeniedError  403
├── NotFoundError          404
├── ConflictError          409  (the state of a resource forbids the action)
├── PreconditionFailedError 412 (a stale If-Match ETag)
├── PayloadTooLargeError   413  (a request body over its limit)
├── TooManyRequestsError   429  (a caller over its limit of concurrent calls; has Retry-After)
├── UnavailableError       503  (a dependency such as Temporal is down; has Retry-After)
└── UpstreamTimeoutError   504  (a workload did not answer the gateway in time)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class FieldProblem:
    """One bad field: where it is (a JSON path) and what is wrong with it."""

    loc: Loc
    msg: str
    type: str = "value_error"


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(DomainError):
    code = "invalid_input"

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in self.problems))

    @classmethod
    def at(cls, loc: Loc, msg: str, type: str = "value_error") -> InvalidInputError:
        return cls([FieldProblem(loc, msg, type)])


class AuthenticationError(DomainError):
    code = "unauthenticated"


class PermissionDeniedError(DomainError):
    code = "permission_denied"


class NotFoundError(DomainError):
    code = "not_found"

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} '{ident}' was not found")
        self.kind = kind
        self.ident = ident


class ConflictError(DomainError):
    code = "conflict"


class PreconditionFailedError(DomainError):
    code = "precondition_failed"


class UpstreamTimeoutError(DomainError):
    code = "upstream_timeout"


class BadGatewayError(DomainError):
    code = "bad_gateway"


class PayloadTooLargeError(DomainError):
    code = "payload_too_large"


class TooManyRequestsError(DomainError):
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_seconds: int = 1) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class UnavailableError(DomainError):
    code = "unavailable"

    def __init__(self, message: str, *, retry_after_seconds: int = 5) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
