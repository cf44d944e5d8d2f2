"""A thin async face on the official (blocking) Kubernetes client.

Every call runs in a worker thread (`asyncio.to_thread`), gets a default timeout (the stock
client has none, so one stuck request would hang an activity), returns plain JSON dicts (we
build manifests as dicts and read status as dicts; no generated models in between) and turns
transport and server errors into the runtime's error vocabulary.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from runtimes.cancellation import finish_if_cancelled
from runtimes.errors import RuntimeUnavailableError, StartFailedError

DEFAULT_TIMEOUT_SECONDS = 30.0
FIELD_MANAGER = "workload-api"
MERGE_PATCH = "application/merge-patch+json"

# kind -> (API class, snake-case name used in the generated method names)
_KINDS: dict[str, tuple[str, str]] = {
    "Deployment": ("apps", "deployment"),
    "Service": ("core", "service"),
    "Secret": ("core", "secret"),
    "Pod": ("core", "pod"),
}
T = TypeVar("T")


class NotFound(Exception):
    """The object does not exist (404)."""


class Conflict(Exception):
    """The object already exists (409)."""


class TimeoutApiClient(k8s.ApiClient):
    """An ApiClient whose requests time out unless the caller asks otherwise (dstack's idea)."""

    def __init__(self, configuration: Any, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__(configuration)
        self.default_timeout = timeout

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        timeout = _request_timeout if _request_timeout is not None else self.default_timeout
        return super().call_api(
            method, url, header_params, body, post_params, _request_timeout=timeout
        )


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """In a pod, the service account's token; elsewhere a kubeconfig file (or $KUBECONFIG)."""
    configuration = k8s.Configuration()
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
    except (k8s_config.ConfigException, OSError) as exc:
        raise RuntimeUnavailableError(f"cannot load Kubernetes credentials: {exc}") from exc
    return configuration


def _status_message(exc: k8s.ApiException) -> str:
    """The `message` of the Status body; never the whole body (it can be large or noisy)."""
    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or exc.reason or "no message")


def _translate(exc: Exception, what: str) -> Exception:
    if isinstance(exc, k8s.ApiException):
        status = exc.status or 0
        if status == 404:
            return NotFound(what)
        if status == 409:
            return Conflict(what)
        if status in (400, 422):
            # The server rejected what we built from the plan: the plan cannot run as is.
            return StartFailedError(f"Kubernetes rejected {what}: {_status_message(exc)}")
        if status in (401, 403):
            return RuntimeUnavailableError(
                f"Kubernetes refused {what} ({status}): {_status_message(exc)}; "
                "check the worker's service account and Role"
            )
        return RuntimeUnavailableError(f"Kubernetes failed {what} ({status}): {exc.reason}")
    return RuntimeUnavailableError(f"Kubernetes API did not answer {what}: {exc}")


def _read_json(response: Any) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(response.data or b"{}")
        return data
    finally:
        response.release_conn()


def _read_text(response: Any) -> str:
    try:
        data: bytes = response.data or b""
        return data.decode("utf-8", errors="replace")
    finally:
        response.release_conn()


class KubeApi:
    """Namespaced CRUD on the few kinds the runtime uses, as JSON dicts."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.host: str = api_client.configuration.host
        self._apps = k8s.AppsV1Api(api_client)
        self._core = k8s.CoreV1Api(api_client)

    def _method(self, verb: str, kind: str) -> Callable[..., Any]:
        api, singular = _KINDS[kind]
        target = self._apps if api == "apps" else self._core
        method: Callable[..., Any] = getattr(target, f"{verb}_namespaced_{singular}")
        return method

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await finish_if_cancelled(asyncio.to_thread(fn, *args, **kwargs))
        except (k8s.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, what) from exc

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        kind, name = body["kind"], body["metadata"]["name"]
        method = self._method("create", kind)
        return await self._call(
            f"creating {kind} {name}",
            lambda: _read_json(
                method(self.namespace, body, field_manager=FIELD_MANAGER, _preload_content=False)
            ),
        )

    async def get(self, kind: str, name: str) -> dict[str, Any]:
        method = self._method("read", kind)
        return await self._call(
            f"reading {kind} {name}",
            lambda: _read_json(method(name, self.namespace, _preload_content=False)),
        )

    async def patch(self, kind: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch: maps merge, lists are replaced whole, null deletes a key."""
        method = self._method("patch", kind)
        return await self._call(
            f"patching {kind} {name}",
            lambda: _read_json(
                method(
                    name,
                    self.namespace,
                    body,
                    field_manager=FIELD_MANAGER,
                    _content_type=MERGE_PATCH,
                    _preload_content=False,
                )
            ),
        )

    async def delete(self, kind: str, name: str) -> bool:
        """True if this call deleted it, False if it was already gone."""
        method = self._method("delete", kind)
        # Background: the garbage collector removes ReplicaSets and pods after the Deployment.
        options = {"propagationPolicy": "Background"}
        try:
            await self._call(
                f"deleting {kind} {name}",
                lambda: _read_json(
                    method(name, self.namespace, body=options, _preload_content=False)
                ),
            )
        except NotFound:
            return False
        return True

    async def list(self, kind: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        method = self._method("list", kind)
        selector = _selector(labels)
        document = await self._call(
            f"listing {kind}s",
            lambda: _read_json(
                method(self.namespace, label_selector=selector, _preload_content=False)
            ),
        )
        items: list[dict[str, Any]] = document.get("items") or []
        # The server filters already; filtering again costs nothing and keeps us honest
        # against any server (or emulator) that ignores the selector.
        return [item for item in items if has_labels(item, labels)]

    async def read_log(self, pod: str, container: str, **params: Any) -> str:
        method: Callable[..., Any] = self._core.read_namespaced_pod_log
        return await self._call(
            f"reading logs of {pod}/{container}",
            lambda: _read_text(
                method(pod, self.namespace, container=container, _preload_content=False, **params)
            ),
        )

    def open_log_stream(self, pod: str, container: str, idle_timeout: float, **params: Any) -> Any:
        """Blocking: a urllib3 response streaming `follow=true` logs; call from a thread."""
        default = getattr(self.api_client, "default_timeout", DEFAULT_TIMEOUT_SECONDS)
        connect = min(default, idle_timeout)
        try:
            return self._core.read_namespaced_pod_log(
                pod,
                self.namespace,
                container=container,
                follow=True,
                _preload_content=False,
                _request_timeout=(connect, idle_timeout),
                **params,
            )
        except (k8s.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, f"following logs of {pod}/{container}") from exc

    def list_pods_blocking(self, labels: Mapping[str, str]) -> dict[str, Any]:
        """Blocking (for the pod watch's thread): the pod list document, resourceVersion in
        its metadata."""
        try:
            return _read_json(
                self._core.list_namespaced_pod(
                    self.namespace, label_selector=_selector(labels), _preload_content=False
                )
            )
        except (k8s.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, "listing Pods") from exc

    def watch_pods_blocking(self, labels: Mapping[str, str], version: str, seconds: int) -> Any:
        """Blocking: a urllib3 response streaming pod watch events (one JSON object a line)
        from `version`, which the server ends after `seconds`."""
        default = getattr(self.api_client, "default_timeout", DEFAULT_TIMEOUT_SECONDS)
        try:
            return self._core.list_namespaced_pod(
                self.namespace,
                label_selector=_selector(labels),
                watch=True,
                resource_version=version or None,
                allow_watch_bookmarks=True,
                timeout_seconds=seconds,
                _preload_content=False,
                # Connect as any call; a read may wait for the whole watch.
                _request_timeout=(default, seconds + default),
            )
        except (k8s.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, "watching Pods") from exc

    async def ping(self) -> None:
        # Listing in our namespace proves reachability, credentials and RBAC in one cheap call.
        method = self._method("list", "Deployment")
        await self._call(
            f"listing Deployments in {self.namespace}",
            lambda: _read_json(method(self.namespace, limit=1, _preload_content=False)),
        )


def _selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def has_labels(item: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    found: Mapping[str, str] = (item.get("metadata") or {}).get("labels") or {}
    return all(found.get(key) == value for key, value in labels.items())
