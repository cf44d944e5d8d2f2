"""One watch of the namespace's managed pods for the whole process, fanned out by workload.

Supervisors read their workload's pods from this cache and sleep until it changes, instead
of listing pods every tick: an idle workload costs the API server nothing. The watch lists
once (for a resourceVersion), then streams changes from there; when the stream ends (server
timeout) it resumes from the last version seen, and when that is too old (410 Gone) or the
stream fails, it lists again. Until it has listed, `synced` is False and supervisors list
for themselves.

The official client is blocking, so the stream is read in a daemon thread of its own; every
change to the cache is applied on the event loop (`call_soon_threadsafe`), where supervisors
read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from runtimes.base import LABEL_MANAGED, LABEL_WORKLOAD
from runtimes.kubernetes.client import KubeApi

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
# The server ends a watch after this; resuming from the last version loses nothing.
WATCH_SECONDS = 300

Pod = dict[str, Any]


def _workload(pod: Pod) -> str | None:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_MANAGED) != "true":
        return None
    workload = labels.get(LABEL_WORKLOAD)
    return str(workload) if workload else None


class PodWatch:
    def __init__(self, api: KubeApi) -> None:
        self._api = api
        self._pods: dict[str, dict[str, Pod]] = {}  # workload -> pod name -> pod
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

    def pods(self, workload_id: str) -> list[Pod]:
        return list(self._pods.get(workload_id, {}).values())

    def subscribe(self, workload_id: str, changed: Callable[[], None]) -> Callable[[], None]:
        """Call `changed` (on the event loop) whenever the workload's pods change."""
        self._listeners.setdefault(workload_id, set()).add(changed)
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name="wapi-pod-watch", daemon=True)
            self._thread.start()

        def unsubscribe() -> None:
            listeners = self._listeners.get(workload_id, set())
            listeners.discard(changed)
            if not listeners:
                self._listeners.pop(workload_id, None)

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
                log.warning("pod watch failed; listing again", extra={"error": str(error)})
                version = None
                self._on_loop(self._unsync)
                self._closing.wait(RETRY_SECONDS)

    def _relist(self) -> str:
        document = self._api.list_pods_blocking({LABEL_MANAGED: "true"})
        items = list(document.get("items") or [])
        self._on_loop(self._replace, items)
        return str((document.get("metadata") or {}).get("resourceVersion") or "")

    def _stream(self, version: str) -> str | None:
        """Apply changes from `version` on; the version to resume from, or None to relist."""
        response = self._api.watch_pods_blocking({LABEL_MANAGED: "true"}, version, WATCH_SECONDS)
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
                kind, pod = event.get("type"), event.get("object") or {}
                if kind == "ERROR":  # e.g. 410 Gone: too old a version
                    return None
                version = str((pod.get("metadata") or {}).get("resourceVersion") or version)
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._on_loop(self._apply, kind, pod)
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

    def _replace(self, items: list[Pod]) -> None:
        self._pods = {}
        for pod in items:
            if workload := _workload(pod):
                self._pods.setdefault(workload, {})[pod["metadata"]["name"]] = pod
        self._synced = True
        self._notify(set(self._listeners))

    def _apply(self, kind: str, pod: Pod) -> None:
        workload = _workload(pod)
        if workload is None:
            return
        name = pod["metadata"]["name"]
        if kind == "DELETED":
            self._pods.get(workload, {}).pop(name, None)
        else:
            self._pods.setdefault(workload, {})[name] = pod
        self._notify({workload})

    def _unsync(self) -> None:
        self._synced = False
        self._notify(set(self._listeners))

    def _notify(self, workloads: set[str]) -> None:
        for workload in workloads:
            for changed in list(self._listeners.get(workload, ())):
                changed()


def _shutdown(response: Any) -> None:
    """Unblock a thread reading `response` (closing it from here would wait for that read)."""
    with contextlib.suppress(Exception):
        response.shutdown()
