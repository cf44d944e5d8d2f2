"""Watches of the namespace's objects for the whole process, one per kind, fanned out by key.

Supervisors read their workload's pods, Deployments, Services and EndpointSlices from these
caches and sleep until one changes, instead of listing every tick: an idle workload costs the
API server nothing, and a change made behind our back (a deleted Service, a `kubectl scale`)
wakes its supervisor, which puts it back. Each watch lists once (for a resourceVersion), then
streams changes from there; when the stream ends (server timeout) it resumes from the last
version seen, and when that is too old (410 Gone) or the stream fails, it lists again. Until
it has listed, `synced` is False and supervisors list for themselves.

The official client is blocking, so each stream is read in a daemon thread of its own; every
change to a cache is applied on the event loop (`call_soon_threadsafe`), where supervisors
read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtimes.base import LABEL_MANAGED, LABEL_WORKLOAD
from runtimes.kubernetes.client import KubeApi, selector

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
# The server ends a watch after this; resuming from the last version loses nothing.
WATCH_SECONDS = 300

SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # set by the EndpointSlice controller

Object = dict[str, Any]


def workload_of(item: Object) -> str | None:
    labels = (item.get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_MANAGED) != "true":
        return None
    workload = labels.get(LABEL_WORKLOAD)
    return str(workload) if workload else None


def service_of(item: Object) -> str | None:
    """The Service an EndpointSlice belongs to (its controller does not copy our labels
    reliably enough to select on them, so slices are keyed by their Service's name)."""
    service = ((item.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
    return str(service) if service else None


class Watch:
    """One kind's objects matching `label_selector`, cached by `key_of` (objects it maps to
    None are ignored)."""

    def __init__(
        self,
        api: KubeApi,
        kind: str,
        label_selector: str,
        key_of: Callable[[Object], str | None] = workload_of,
    ) -> None:
        self._api = api
        self.kind = kind
        self._selector = label_selector
        self._key_of = key_of
        self._objects: dict[str, dict[str, Object]] = {}  # key -> object name -> object
        self._listeners: dict[str, set[Callable[[], None]]] = {}
        self._synced = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._response: Any = None
        self._response_lock = threading.Lock()

    @property
    def synced(self) -> bool:
        return self._synced

    def objects(self, key: str) -> list[Object]:
        return list(self._objects.get(key, {}).values())

    def subscribe(self, key: str, changed: Callable[[], None]) -> Callable[[], None]:
        """Call `changed` (on the event loop) whenever the objects under `key` change."""
        self._listeners.setdefault(key, set()).add(changed)
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            name = f"wapi-{self.kind.lower()}-watch"
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

        def unsubscribe() -> None:
            listeners = self._listeners.get(key, set())
            listeners.discard(changed)
            if not listeners:
                self._listeners.pop(key, None)

        return unsubscribe

    def close(self) -> None:
        with self._response_lock:
            self._closing.set()
            response = self._response
        if response is not None:
            _shutdown(response)

    # The thread

    def _run(self) -> None:
        version: str | None = None
        while not self._closing.is_set():
            try:
                if version is None:
                    version = self._relist()
                version = self._stream(version)
            except Exception as error:  # the API server went away, or answered nonsense
                if self._closing.is_set():
                    return
                log.warning(
                    "watch failed; listing again", extra={"kind": self.kind, "error": str(error)}
                )
                version = None
                self._on_loop(self._unsync)
                self._closing.wait(RETRY_SECONDS)

    def _relist(self) -> str:
        document = self._api.list_blocking(self.kind, self._selector)
        items = list(document.get("items") or [])
        self._on_loop(self._replace, items)
        return str((document.get("metadata") or {}).get("resourceVersion") or "")

    def _stream(self, version: str) -> str | None:
        """Apply changes from `version` on; the version to resume from, or None to relist."""
        response = self._api.watch_blocking(self.kind, self._selector, version, WATCH_SECONDS)
        with self._response_lock:
            if self._closing.is_set():
                _shutdown(response)
                return None
            self._response = response
        try:
            for line in response:
                if not line.strip():
                    continue
                event = json.loads(line)
                change, item = event.get("type"), event.get("object") or {}
                if change == "ERROR":  # e.g. 410 Gone: too old a version
                    log.info("watch expired; listing again", extra={"kind": self.kind})
                    return None
                version = str((item.get("metadata") or {}).get("resourceVersion") or version)
                if change in ("ADDED", "MODIFIED", "DELETED"):
                    self._on_loop(self._apply, change, item)
        finally:
            with self._response_lock:
                self._response = None
            with contextlib.suppress(Exception):
                response.release_conn()
        return version

    def _on_loop(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
            self._loop.call_soon_threadsafe(callback, *args)

    # On the event loop

    def _replace(self, items: list[Object]) -> None:
        self._objects = {}
        for item in items:
            if key := self._key_of(item):
                self._objects.setdefault(key, {})[item["metadata"]["name"]] = item
        self._synced = True
        self._notify(set(self._listeners))

    def _apply(self, change: str, item: Object) -> None:
        key = self._key_of(item)
        if key is None:
            return
        name = item["metadata"]["name"]
        if change == "DELETED":
            self._objects.get(key, {}).pop(name, None)
        else:
            self._objects.setdefault(key, {})[name] = item
        self._notify({key})

    def _unsync(self) -> None:
        self._synced = False
        self._notify(set(self._listeners))

    def _notify(self, keys: set[str]) -> None:
        for key in keys:
            for changed in list(self._listeners.get(key, ())):
                changed()


@dataclass(frozen=True)
class Watches:
    """What supervisors follow: their pods (status), Deployments and Services (drift), and
    the entry Service's EndpointSlices (routing)."""

    pods: Watch
    deployments: Watch
    services: Watch
    endpoint_slices: Watch

    @classmethod
    def of(cls, api: KubeApi) -> Watches:
        managed = selector({LABEL_MANAGED: "true"})
        return cls(
            pods=Watch(api, "Pod", managed),
            deployments=Watch(api, "Deployment", managed),
            services=Watch(api, "Service", managed),
            endpoint_slices=Watch(api, "EndpointSlice", SERVICE_NAME_LABEL, service_of),
        )

    @property
    def synced(self) -> bool:
        return all(watch.synced for watch in self._all())

    def close(self) -> None:
        for watch in self._all():
            watch.close()

    def _all(self) -> tuple[Watch, ...]:
        return (self.pods, self.deployments, self.services, self.endpoint_slices)


def _shutdown(response: Any) -> None:
    """Unblock a thread reading `response` (closing it from here would wait for that read)."""
    with contextlib.suppress(Exception):
        response.shutdown()
