"""kmock's emulator taught the API-server behaviours the runtime relies on.

kmock stores objects as JSON and merges patches; a real API server also gives every object a
`uid` and a `creationTimestamp`, creates or replaces an object on server-side apply
(`application/apply-patch+yaml`, one field manager owning all it applied), and runs a garbage
collector that deletes objects whose owner (by `uid`) is gone. This class adds those four and
nothing else; what it does not emulate (field ownership between several managers, resource
versions, admission) is listed in docs/operations.md.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import aiohttp.web
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


class ApiServer(kmock.KubernetesEmulator):
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
