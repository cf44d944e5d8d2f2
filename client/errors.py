"""Errors the client raises: one class per kind of answer, each carrying the server's error body.

Scripts catch the kind they can handle (`NotFoundError`, `ConflictError`, ...) and read `code`,
`detail` (the JSON path of every bad field) and `request_id` (to find the call in the server's
logs and audit records).
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError

from models.common import ErrorBody, ErrorDetail


class WapiError(Exception):
    """Anything the client could not do."""


class ApiError(WapiError):
    """The API answered with an error status."""

    def __init__(
        self,
        status: int,
        body: ErrorBody,
        *,
        method: str = "",
        url: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = body.code
        self.message = body.message
        self.detail: list[ErrorDetail] = body.detail
        self.request_id = body.request_id
        self.method = method
        self.url = url
        self.retry_after = retry_after
        super().__init__(str(self))

    def __str__(self) -> str:
        fields = "; ".join(f"{_path(d.loc)}: {d.msg}" for d in self.detail[:5])
        text = f"{self.status} {self.code}: {self.message}"
        if fields and fields not in self.message:
            text += f" ({fields})"
        if self.request_id:
            text += f" [request {self.request_id}]"
        return text


def _path(loc: list[str | int]) -> str:
    return ".".join(str(part) for part in loc)


class InvalidInputError(ApiError):
    """422 (or 400): `detail` names every bad field by its JSON path."""


class AuthenticationError(ApiError):
    """401: no key, or a bad or revoked one."""


class PermissionDeniedError(ApiError):
    """403: the key's role, or its role on the resource, does not allow this."""


class NotFoundError(ApiError):
    """404."""


class ConflictError(ApiError):
    """409: the resource is in a state that does not allow this (e.g. start a running workload)."""


class PreconditionFailedError(ApiError):
    """412: the resource changed since the `If-Match` revision was read."""


class TooManyRequestsError(ApiError):
    """429: slow down; `retry_after` says for how long."""


class UnavailableError(ApiError):
    """503 (and 502, 504): the service or something behind it is not answering right now."""


class ServerError(ApiError):
    """500 or another unexpected status."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidInputError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    422: InvalidInputError,
    429: TooManyRequestsError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
}


class ConnectionFailedError(WapiError):
    """The API could not be reached (after retries)."""

    def __init__(self, url: str, cause: httpx.TransportError) -> None:
        self.url = url
        super().__init__(f"cannot reach the API at {url}: {type(cause).__name__}: {cause}")


class WaitTimeoutError(WapiError):
    """A `wait_until` ran out of time; `last` is the state seen last."""

    def __init__(self, what: str, timeout: float, last: Any) -> None:
        self.what = what
        self.timeout = timeout
        self.last = last
        super().__init__(f"timed out after {timeout:g} s waiting for {what}")


class WaitFailedError(WapiError):
    """A `wait_until` saw a state it cannot leave by itself (errored, rolled back, ...)."""

    def __init__(self, what: str, reason: str, last: Any) -> None:
        self.what = what
        self.reason = reason
        self.last = last
        super().__init__(f"{what}: {reason}")


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date, or nothing: the backoff decides


def error_from_response(response: httpx.Response) -> ApiError:
    """The typed error for an error response, with the server's body when it sent one."""
    try:
        body = ErrorBody.model_validate(response.json())
    except (ValueError, ValidationError):
        text = response.text.strip()[:500] if not response.is_stream_consumed else ""
        body = ErrorBody(code="http_error", message=text or response.reason_phrase)
    kind = _BY_STATUS.get(response.status_code, ServerError)
    return kind(
        response.status_code,
        body,
        method=response.request.method,
        url=str(response.request.url),
        retry_after=retry_after_seconds(response),
    )
