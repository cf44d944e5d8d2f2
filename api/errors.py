"""The one place domain errors become HTTP responses, all in the `ErrorBody` shape (the
status of each kind of error: `api/error_status.py`, which the gateway shares)."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from api.error_status import status_for
from catalog.database import catalog_unavailable
from models.common import ErrorBody, ErrorDetail
from services.errors import (
    AuthenticationError,
    DomainError,
    InvalidInputError,
    TooManyRequestsError,
    UnavailableError,
)

log = logging.getLogger(__name__)


def error_response(
    request: HTTPConnection,
    status: int,
    code: str,
    message: str,
    detail: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(
        code=code,
        message=message,
        detail=detail or [],
        request_id=getattr(request.state, "request_id", None),
    )
    return JSONResponse(body.model_dump(by_alias=True), status_code=status, headers=headers)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return domain_error_response(request, exc)


def domain_error_response(request: HTTPConnection, exc: DomainError) -> JSONResponse:
    """The response for `exc`, with the headers its kind calls for."""
    status = status_for(exc)
    detail = []
    headers: dict[str, str] = {}
    if isinstance(exc, InvalidInputError):
        detail = [ErrorDetail(loc=list(p.loc), msg=p.msg, type=p.type) for p in exc.problems]
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, UnavailableError | TooManyRequestsError):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    return error_response(request, status, exc.code, exc.message, detail, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # The offending input is left out on purpose: it may hold a secret.
    detail = [
        ErrorDetail(
            loc=list(error.get("loc", ())),
            msg=str(error.get("msg", "")).removeprefix("Value error, "),
            type=str(error.get("type", "")),
        )
        for error in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(map(str, d.loc))}: {d.msg}" for d in detail[:3])
    more = f" (and {len(detail) - 3} more)" if len(detail) > 3 else ""
    return error_response(request, 422, "invalid_input", f"{summary}{more}", detail)


async def _stale_data(request: Request, _exc: Exception) -> JSONResponse:
    # Two writers raced past the If-Match check; the second one loses cleanly.
    return error_response(
        request, 412, "precondition_failed", "the resource changed while you were writing it; retry"
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {
        400: "bad_request",
        404: "not_found",
        405: "method_not_allowed",
        413: "request_too_large",
    }
    message = "no such route" if exc.status_code == 404 else str(exc.detail)
    headers: dict[str, Any] = dict(exc.headers or {})
    return error_response(
        request, exc.status_code, codes.get(exc.status_code, "http_error"), message, headers=headers
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if not catalog_unavailable(exc):
        return await _unexpected(request, exc)
    log.warning(
        "the catalog database is not answering",
        extra={
            "request_id": getattr(request.state, "request_id", None),
            "error": type(exc).__name__,
        },
    )
    return error_response(
        request,
        503,
        "catalog_unavailable",
        "the catalog database is not answering; try again shortly",
        headers={"Retry-After": "5"},
    )


async def _unexpected(request: Request, _exc: Exception) -> JSONResponse:
    log.exception(
        "unhandled error", extra={"request_id": getattr(request.state, "request_id", None)}
    )
    return error_response(
        request, 500, "internal_error", "internal error; the request id is in the logs"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StaleDataError, _stale_data)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # The catalog down, unreachable, starting up, or locked past the busy timeout is a 503.
    app.add_exception_handler(sqlalchemy.exc.DBAPIError, _database_error)
    app.add_exception_handler(sqlalchemy.exc.TimeoutError, _database_error)
    app.add_exception_handler(ConnectionError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
