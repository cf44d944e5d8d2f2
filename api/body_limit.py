"""`BodyLimitMiddleware`: management requests carry at most `WAPI_MAX_REQUEST_BODY_BYTES`.

A declared `Content-Length` over the limit is refused before a byte of the body is read; a
body without one (chunked) is counted as it arrives and refused once it passes the limit.
Either way the answer is 413 in the usual error shape, and, like every non-read request, it
is audited (the middleware sits inside `AuditMiddleware`). Invoke calls stream their bodies to
the workload and are left alone.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.audit_actions import API_PREFIX

GATEWAY_PREFIX = API_PREFIX + "endpoints/"


class RequestTooLargeError(HTTPException):
    """The body is over the limit. An HTTPException, so FastAPI's body reading passes it on
    (it turns other errors into a 400) and `api.errors` answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"the request body is larger than {limit} bytes (WAPI_MAX_REQUEST_BODY_BYTES)"
        )


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length header; -1 when it is present but not a number."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 20 else -1
    return None


def _limit(scope: Scope) -> int | None:
    context = getattr(getattr(scope.get("app"), "state", None), "context", None)
    settings = getattr(context, "settings", None)
    return getattr(settings, "max_request_body_bytes", None)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        limit = _limit(scope) if scope["type"] == "http" else None
        if limit is None or not path.startswith(API_PREFIX) or path.startswith(GATEWAY_PREFIX):
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and not 0 <= declared <= limit:
            # The handler raises without calling `receive`: the body is never read.
            async def refuse() -> Message:
                raise RequestTooLargeError(limit)

            await self.app(scope, refuse, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise RequestTooLargeError(limit)
            return message

        await self.app(scope, counted, send)
