"""A thin async face on the official (blocking) Kubernetes client.

Every call runs in a worker thread (`asyncio.to_thread`), gets a default timeout (the stock
client has none, so one stuck request would hang an activity), returns plain JSON dicts (we
build manifests as dicts and read status as dicts; no generated models in between) and turns
transport and server errors into the runtime's error vocabulary, the way a real API server
answers them:

- 403 naming a user that "cannot" do something is RBAC: retryable (the Role can be fixed);
  any other 403 is an admission webhook, a quota, PodSecurity or a LimitRange refusing the
  object: not retryable, and the error names the policy.
- 429 (API priority and fairness) is retried after the server's `Retry-After`, a few times.
- 400 "is waiting to start" on a log read is `ContainerWaiting`, not a broken plan.

The `call_api` override is written against the 37.x client (`pyproject.toml` pins it): 33-36
had another signature.

(Over 300 lines: every call to the API server, and the translation of its answers, is here and
nowhere else.)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from runtimes.cancellation import finish_if_cancelled
from runtimes.errors import PolicyRejectedError, RuntimeUnavailableError, StartFailedError

DEFAULT_TIMEOUT_SECONDS = 30.0
FIELD_MANAGER = "workload-api"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # server-side apply; JSON is YAML
# 429: how often and how long (per wait) we honour Retry-After before calling it unavailable.
THROTTLE_ATTEMPTS = 4
THROTTLE_MAX_WAIT_SECONDS = 30.0
_RBAC_DENIAL = re.compile(r'User "[^"]*" cannot [a-z]+ resource')
_POLICIES = (
    (re.compile(r'admission webhook "([^"]+)" denied'), 'admission webhook "{}"'),
    (re.compile(r"ValidatingAdmissionPolicy '([^']+)'"), "ValidatingAdmissionPolicy '{}'"),
    (re.compile(r"exceeded quota: ([-.a-z0-9]+)"), 'ResourceQuota "{}"'),
    (re.compile(r'violates PodSecurity "([^"]+)"'), 'PodSecurity "{}"'),
    (re.compile(r"(maximum|minimum) [a-z-]+ usage per (Container|Pod)"), "a LimitRange"),
)

# kind -> (API class, snake-case name used in the generated method names)
_KINDS: dict[str, tuple[str, str]] = {
    "Deployment": ("apps", "deployment"),
    "Service": ("core", "service"),
    "Secret": ("core", "secret"),
    "Pod": ("core", "pod"),
    "ConfigMap": ("core", "config_map"),
    "EndpointSlice": ("discovery", "endpoint_slice"),
}
T = TypeVar("T")


class NotFound(Exception):
    """The object does not exist (404)."""


class Conflict(Exception):
    """The object already exists (409)."""


class ContainerWaiting(Exception):
    """A log read of a container that has not started yet (400 "is waiting to start")."""


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


def policy_name(message: str) -> str | None:
    """The admission policy a 403 message names (webhook, quota, PodSecurity...), if any."""
    for pattern, template in _POLICIES:
        match = pattern.search(message)
        if match:
            return template.format(match.group(1))
    return None


def _translate(exc: Exception, what: str) -> Exception:
    if isinstance(exc, k8s.ApiException):
        status = exc.status or 0
        message = _status_message(exc)
        if status == 404:
            return NotFound(what)
        if status == 409:
            return Conflict(what)
        if status == 400 and "is waiting to start" in message:
            return ContainerWaiting(message)
        if status in (400, 422):
            # The server rejected what we built from the plan: the plan cannot run as is.
            return StartFailedError(f"Kubernetes rejected {what}: {message}")
        if status == 401 or (status == 403 and _RBAC_DENIAL.search(message)):
            return RuntimeUnavailableError(
                f"Kubernetes refused {what} ({status}): {message}; "
                "check the worker's service account and Role"
            )
        if status == 403:
            policy = policy_name(message) or "an admission policy"
            return PolicyRejectedError(f"{policy} refused {what}: {message}")
        if status == 429:
            return RuntimeUnavailableError(f"Kubernetes is throttling {what}: {message}")
        return RuntimeUnavailableError(f"Kubernetes failed {what} ({status}): {exc.reason}")
    return RuntimeUnavailableError(f"Kubernetes API did not answer {what}: {exc}")


def retry_after(exc: k8s.ApiException) -> float:
    """The seconds a 429 asks us to wait (1 if it does not say), capped."""
    headers = exc.headers or {}
    try:
        seconds = float(headers.get("Retry-After") or 1)
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), THROTTLE_MAX_WAIT_SECONDS)


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
        self._apis: dict[str, Any] = {
            "apps": k8s.AppsV1Api(api_client),
            "core": k8s.CoreV1Api(api_client),
            "discovery": k8s.DiscoveryV1Api(api_client),
        }
        self._core = self._apis["core"]

    def _method(self, verb: str, kind: str) -> Callable[..., Any]:
        api, singular = _KINDS[kind]
        method: Callable[..., Any] = getattr(self._apis[api], f"{verb}_namespaced_{singular}")
        return method

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        for attempt in range(1, THROTTLE_ATTEMPTS + 1):
            try:
                return await finish_if_cancelled(asyncio.to_thread(fn, *args, **kwargs))
            except k8s.ApiException as exc:
                if exc.status != 429 or attempt == THROTTLE_ATTEMPTS:
                    raise _translate(exc, what) from exc
                await asyncio.sleep(retry_after(exc))
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise _translate(exc, what) from exc
        raise AssertionError("unreachable")  # the last attempt returns or raises

    async def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply as our field manager; `force` takes back fields someone else
        (a `kubectl scale`, an edit) changed, which is how drift is repaired."""
        kind, name = body["kind"], body["metadata"]["name"]
        method = self._method("patch", kind)
        return await self._call(
            f"applying {kind} {name}",
            lambda: _read_json(
                method(
                    name,
                    self.namespace,
                    body,
                    field_manager=FIELD_MANAGER,
                    force=True,
                    _content_type=APPLY_PATCH,
                    _preload_content=False,
                )
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

    async def pod_metrics(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """The metrics API's PodMetrics of the pods with `labels` (NotFound: no metrics API)."""
        metrics = k8s.CustomObjectsApi(self.api_client)
        label_selector = selector(labels)
        document = await self._call(
            "reading pod metrics",
            lambda: _read_json(
                metrics.list_namespaced_custom_object(
                    "metrics.k8s.io", "v1beta1", self.namespace, "pods",
                    label_selector=label_selector, _preload_content=False,
                )
            ),
        )  # fmt: skip
        items: list[dict[str, Any]] = document.get("items") or []
        return [item for item in items if has_labels(item, labels)]

    async def list(self, kind: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        method = self._method("list", kind)
        label_selector = selector(labels)
        document = await self._call(
            f"listing {kind}s",
            lambda: _read_json(
                method(self.namespace, label_selector=label_selector, _preload_content=False)
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

    def list_blocking(self, kind: str, label_selector: str) -> dict[str, Any]:
        """Blocking (for a watch's thread): the list document, resourceVersion in its
        metadata."""
        method = self._method("list", kind)
        try:
            return _read_json(
                method(self.namespace, label_selector=label_selector, _preload_content=False)
            )
        except (k8s.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, f"listing {kind}s") from exc

    def watch_blocking(self, kind: str, label_selector: str, version: str, seconds: int) -> Any:
        """Blocking: a urllib3 response streaming watch events (one JSON object a line) from
        `version`, which the server ends after `seconds`."""
        method = self._method("list", kind)
        default = getattr(self.api_client, "default_timeout", DEFAULT_TIMEOUT_SECONDS)
        try:
            return method(
                self.namespace,
                label_selector=label_selector,
                watch=True,
                resource_version=version or None,
                allow_watch_bookmarks=True,
                timeout_seconds=seconds,
                _preload_content=False,
                # Connect as any call; a read may wait for the whole watch.
                _request_timeout=(default, seconds + default),
            )
        except (k8s.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, f"watching {kind}s") from exc

    async def ping(self) -> None:
        # Listing in our namespace proves reachability, credentials and RBAC in one cheap call.
        method = self._method("list", "Deployment")
        await self._call(
            f"listing Deployments in {self.namespace}",
            lambda: _read_json(method(self.namespace, limit=1, _preload_content=False)),
        )


def selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def has_labels(item: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    found: Mapping[str, str] = (item.get("metadata") or {}).get("labels") or {}
    return all(found.get(key) == value for key, value in labels.items())
