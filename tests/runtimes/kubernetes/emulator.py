"""kmock's emulator taught the API-server behaviours the runtime relies on.

kmock stores objects as JSON and merges patches; a real API server also gives every object a
`uid` and a `creationTimestamp`, creates or replaces an object on server-side apply
(`application/apply-patch+yaml`, one field manager owning all it applied), runs a garbage
collector that deletes objects whose owner (by `uid`) is gone, and expires watches: its watch
cache keeps a window of versions, a watch ends when the server says, and resuming it from a
version that has left the window answers an ERROR event with a 410 Gone Status. This class adds
those five and nothing else; what it does not emulate (field ownership between several
managers, resource versions, admission) is listed in docs/operations.md. The metrics API's
`PodMetrics` (`metrics.k8s.io/v1beta1/pods`) is served as one more resource (`cluster.RESOURCES`)
that tests write as metrics-server would report it; what metrics-server computes is not emulated.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp.web
import attrs
import kmock

APPLY_PATCH = "application/apply-patch+yaml"
# What an apply never replaces: the server's own metadata, and the status controllers write.
_SERVER_METADATA = ("uid", "creationTimestamp", "deletionTimestamp", "finalizers")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _server_fields(data: Any) -> None:
    if isinstance(data, dict):
        meta = data.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())


# What a real API server streams to a watch resumed from a version it no longer has.
EXPIRED = {
    "type": "ERROR",
    "object": {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "too old resource version: 1042 (2250)",
        "reason": "Expired",
        "code": 410,
    },
}


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    # resource -> released when the resumed watches may be answered 410 Gone
    _expired: dict[Any, asyncio.Event] = attrs.field(factory=dict, init=False)
    _open_watches: dict[Any, set[asyncio.Event]] = attrs.field(factory=dict, init=False)
    gone_answered: int = attrs.field(default=0, init=False)

    @contextlib.asynccontextmanager
    async def watches_expired(self, resource: str) -> AsyncIterator[None]:
        """End every open watch of `resource` (a server-side timeout) and, inside the block,
        hold their resumption: a change made there reaches no watch. On leaving, the first
        watch resumed from a version is answered 410 Gone, as when the server's watch
        cache has moved past it; only a new list shows what happened meanwhile."""
        key = kmock.resource(resource)
        released = self._expired[key] = asyncio.Event()
        for end in self._open_watches.get(key, set()):
            end.set()
        for _ in range(500):
            if not self._open_watches.get(key):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"the watches of {resource} did not end")
        try:
            yield
        finally:
            released.set()

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        expired = self._expired.get(request.resource)
        if expired is not None and request.params.get("resourceVersion"):
            await expired.wait()
            if self._expired.pop(request.resource, None) is not None:
                self.gone_answered += 1
                yield b""
                yield EXPIRED
                return
        end = asyncio.Event()
        self._open_watches.setdefault(request.resource, set()).add(end)
        events = super()._serve_watch(request).__aiter__()
        ended = asyncio.ensure_future(end.wait())
        step: asyncio.Future[Any] | None = None
        try:
            while True:
                step = asyncio.ensure_future(anext(events))
                await asyncio.wait({step, ended}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    return  # the server ends the watch
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                yield item
        finally:
            self._open_watches[request.resource].discard(end)
            for pending in (step, ended):
                if pending is not None and not pending.done():
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
            close = getattr(events, "aclose", None)  # an async generator's
            if close is not None:
                await close()

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource is not None and request.action == kmock.action.CREATE:
            _server_fields(request.data)
        content_type = request.headers.get("Content-Type", "")
        is_apply = request.action == kmock.action.UPDATE and content_type.startswith(APPLY_PATCH)
        if request.resource is None or not is_apply or request.name is None:
            response = await super()._handle(request)
        else:
            await self._apply(request)
            # Reactions and the stored object's answer, without kmock's merge on top.
            response = await kmock.KubernetesScaffold._handle(self, request)
        if request.action == kmock.action.DELETE:
            await self._collect_garbage()
        return response

    async def _apply(self, request: kmock.Request) -> None:
        assert request.resource is not None and request.name is not None
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                body = dict(request.data)
                _server_fields(body)
                if key in self._objects:
                    self._objects[key].create(body)
                else:
                    self._objects[key] = body
                event = "ADDED"
            else:
                live = self._objects[key].raw
                body = dict(request.data)
                meta = dict(body.get("metadata") or {})
                for field in _SERVER_METADATA:
                    if field in live["metadata"]:
                        meta[field] = live["metadata"][field]
                body["metadata"] = meta
                if "status" in live:
                    body["status"] = live["status"]
                self._objects[key].create(body)  # a new version, wholly the applied content
                event = "MODIFIED"
            await self._buses[request.resource].put(
                {"type": event, "object": self._objects[key].raw}
            )

    async def _collect_garbage(self) -> None:
        """Delete objects whose owners no longer exist, until none is left (cascades)."""
        while True:
            async with self._lock:
                alive = {
                    obj.raw["metadata"].get("uid")
                    for obj in self._objects.values()
                    if not obj.deleted
                }
                orphans = [
                    (key, obj)
                    for key, obj in self._objects.items()
                    if not obj.deleted
                    and any(
                        ref.get("uid") not in alive
                        for ref in obj.raw["metadata"].get("ownerReferences") or []
                    )
                ]
                for (resource, _namespace, _name), obj in orphans:
                    raw = obj.raw
                    obj.delete()
                    await self._buses[resource].put({"type": "DELETED", "object": raw})
            if not orphans:
                return
