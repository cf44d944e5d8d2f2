"""`AuditMiddleware`: every management request under /api/v2 leaves an audit record, refused
ones included, and the record is committed before the client sees the response.

Records are bounded: an unauthenticated request gets a fixed shape (method and route, nothing
the caller chose but a path cut short), an authenticated one the names of the body's top-level
fields (never values), at most 100 of them, each cut short. A body that is not JSON, or JSON too
deep to parse, is recorded without field names.

If writing the record fails, the response is still sent and the failure is logged at ERROR
with the whole entry (which holds no secret values): failing an action that has already been
carried out would tell the client something false about its own request.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.audit_actions import API_PREFIX, matched_action
from models.audit import ActorKind, AuditEntry
from services.api_keys import Principal
from services.audit_writer import AuditWriter

log = logging.getLogger(__name__)

GATEWAY_PREFIX = "/api/v2/endpoints/"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_BODY_BYTES = 1 << 20
MAX_FIELDS = 100
MAX_NAME = 64  # characters kept of a field name or resource id
MAX_PATH = 200  # characters kept of a path no route takes


def is_audited(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    return (
        scope["type"] == "http"
        and scope["method"] not in READ_METHODS
        and path.startswith(API_PREFIX)
        and not path.startswith(GATEWAY_PREFIX)
    )


def _json_object(data: bytes | None) -> dict[str, Any] | None:
    if not data or len(data) > MAX_BODY_BYTES:
        return None
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
        return None
    return value if isinstance(value, dict) else None


class _BodyTap:
    """Keeps a copy of the request body (up to a limit) as the app reads it."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._chunks: list[bytes] = []
        self._size = 0

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request" and self._size <= MAX_BODY_BYTES:
            chunk: bytes = message.get("body", b"")
            self._size += len(chunk)
            self._chunks.append(chunk)
        return message

    def field_names(self) -> list[str] | None:
        """Sorted top-level keys of a JSON object body; the values are never kept."""
        body = _json_object(b"".join(self._chunks) if self._size <= MAX_BODY_BYTES else None)
        return None if body is None else sorted(name[:MAX_NAME] for name in body)[:MAX_FIELDS]


def created_id(start: Message, body: bytes | None) -> str | None:
    """The id of what a successful request created: from `Location`, else the body's `id`."""
    if not 200 <= start["status"] < 300:
        return None
    for name, value in start.get("headers", []):
        if bytes(name).lower() == b"location":
            return bytes(value).decode("latin-1").rstrip("/").rsplit("/", 1)[-1] or None
    new_id = (_json_object(body) or {}).get("id")
    return new_id if isinstance(new_id, str) else None


def build_entry(
    scope: Scope, status: int, new_id: str | None, fields: list[str] | None, latency_ms: float
) -> AuditEntry:
    """The record of one management request."""
    state: dict[str, Any] = scope.get("state", {})
    principal = state.get("principal")
    reported = state.get("audit_summary")
    # What the route chose to report comes first; what we observed takes precedence.
    summary: dict[str, Any] = dict(reported) if isinstance(reported, dict) else {}
    what = matched_action(scope)
    resource_id: str | None = None
    if what is None:  # no route takes this path and method
        action, resource_type = "request.unrouted", "route"
        summary.update(method=scope["method"], path=str(scope.get("path", ""))[:MAX_PATH])
    else:
        action, resource_type = what.action, what.resource_type
        if what.id_param:
            resource_id = str(scope.get("path_params", {}).get(what.id_param, ""))[:MAX_NAME]
            resource_id = resource_id or None
    if new_id and (resource_id is None or (what and what.verb == "create")):
        if resource_id is not None:
            summary["parentId"] = resource_id
        resource_id = new_id
    elif new_id and new_id != resource_id:
        summary["createdId"] = new_id  # e.g. a clone: the source is the resource acted on
    actor: str = "anonymous"
    kind: ActorKind = "anonymous"
    if isinstance(principal, Principal):
        actor, kind = principal.username, "api_key"
        summary["keyId"] = principal.key_id
        if fields is not None:  # anonymous callers choose no content of the record
            summary["fields"] = fields
    client = scope.get("client")
    return AuditEntry(
        actor=actor,
        actor_kind=kind,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        request_id=state.get("request_id"),
        source_ip=client[0] if client else None,
        status_code=status,
        latency_ms=latency_ms,
        summary=summary,
    )


def _writer(scope: Scope) -> AuditWriter | None:
    context = getattr(getattr(scope.get("app"), "state", None), "context", None)
    writer = getattr(context, "audit", None)
    return writer if isinstance(writer, AuditWriter) else None


class AuditMiddleware:
    """Install inside `RequestContextMiddleware`, so the request id exists when it records."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writer = _writer(scope) if is_audited(scope) else None
        if writer is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        tap = _BodyTap(receive)
        held: Message | None = None
        recorded = False

        async def record(status: int, new_id: str | None) -> None:
            nonlocal recorded
            recorded = True
            latency = (time.perf_counter() - started) * 1000
            entry = None
            try:
                entry = build_entry(scope, status, new_id, tap.field_names(), latency)
                await writer.append_now(entry)
            except Exception:
                # The action itself may be committed (the database went away in between):
                # its record is queued and written once the database answers again.
                if entry is not None and writer.enqueue(entry):
                    log.warning("audit record queued: the database refused it", exc_info=True)
                    return
                log.error(
                    "AUDIT RECORD LOST: the request was answered but could not be recorded",
                    exc_info=True,
                    extra={"audit": entry.model_dump(mode="json") if entry else None},
                )

        async def send_after_recording(message: Message) -> None:
            # The response start waits for the first body chunk (a created resource's id may
            # be in it) and for the record to be committed; management responses are small.
            nonlocal held
            if recorded:
                await send(message)
            elif message["type"] == "http.response.start":
                held = message
            elif held is not None:
                complete = message["type"] == "http.response.body" and not message.get(
                    "more_body", False
                )
                body: bytes | None = message.get("body") if complete else None
                await record(held["status"], created_id(held, body))
                await send(held)
                await send(message)
            else:
                await send(message)

        try:
            await self.app(scope, tap.receive, send_after_recording)
        except Exception:
            if not recorded:  # the server's error handler answers 500 outside of us
                await record(500, None)
            raise
        if held is not None and not recorded:  # a response start without a body
            await record(held["status"], None)
            await send(held)
