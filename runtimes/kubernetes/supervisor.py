"""Supervising one generation on Kubernetes: apply the manifests once, then read pods.

Applying is idempotent so a retried activity never duplicates anything: create, and on 409
read the live object and patch it only if it differs from the plan. The first tick lists the
workload's pods; later ticks read them from the process's pod watch (`watch.py`), and
`wait()` sleeps until the watch reports a change. The kubelet does the probing and
restarting; we report and explain.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from models.plan import RunPlan
from runtimes.base import (
    LABEL_GROUP,
    LABEL_MANAGED,
    LABEL_WORKLOAD,
    Observation,
    ReplicaStatus,
    RestartPolicy,
    RuntimeEvent,
)
from runtimes.errors import (
    ImageNotFoundError,
    RuntimeError_,
    RuntimeUnavailableError,
    StartFailedError,
)
from runtimes.kubernetes import manifests, pods
from runtimes.kubernetes.client import Conflict, KubeApi, NotFound
from runtimes.kubernetes.watch import PodWatch
from runtimes.output import LOG_LINE_BYTES, REASON_LINE_BYTES, REASON_LINES, clip, last_lines

# Missing pods are explained from Deployment conditions, at most this often (one extra list).
_CONDITION_CHECK_SECONDS = 30.0
# While the pod watch is down, look at the pods this often instead.
_POLL_SECONDS = 2.0


class KubernetesSupervisor:
    def __init__(
        self,
        api: KubeApi,
        plan: RunPlan,
        secrets: Mapping[str, str],
        previous: list[ReplicaStatus],
        restart_policy: RestartPolicy,
        watch: PodWatch,
    ) -> None:
        self._api = api
        self._watch = watch
        self._listed = False  # the first tick lists; later ones read the watch
        self._changed = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._plan = plan
        # Held in memory only: the values go into the Secret object and nowhere else.
        self._secrets = dict(secrets)
        self._policy = restart_policy
        self._applied = False
        self._seen = {status.name: status for status in previous}
        self._indexes: dict[str, dict[str, int]] = {}
        for status in previous:
            self._indexes.setdefault(status.group, {})[status.name] = status.index
        self._groups = {group.name: group for group in plan.groups}
        self._entry_address = manifests.entry_address(plan, api.namespace)
        self._condition_messages: dict[str, str] = {}
        self._conditions_checked = float("-inf")

    async def tick(self) -> Observation:
        if not self._applied:
            await self.apply()
            self._applied = True
        if self._unsubscribe is None:  # from the first tick on: it needs the event loop
            self._unsubscribe = self._watch.subscribe(self._plan.workload_id, self._changed.set)
        if self._listed and self._watch.synced:
            found = self._watch.pods(self._plan.workload_id)
        else:
            labels = manifests.workload_labels(self._plan.workload_id)
            found = await self._api.list("Pod", labels)
            self._listed = True
        found.sort(key=pods.creation_key)
        statuses = self._statuses(found)
        failure = await self._failure(found)
        events = self._events(statuses, {pods.name(pod): pod for pod in found})
        events += await self._deployment_events(statuses)
        self._seen = {status.name: status for status in statuses}
        return Observation(replicas=statuses, events=events, failure=failure)

    async def wait(self, at_most: float) -> bool:
        polling = not self._watch.synced
        if polling:
            at_most = min(at_most, _POLL_SECONDS)
        if not self._changed.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(at_most):
                    await self._changed.wait()
        changed = self._changed.is_set() or polling
        self._changed.clear()
        return changed

    async def close(self) -> None:
        """Stop listening; the runtime owns the API client and the watch; pods keep running."""
        if self._unsubscribe is not None:
            self._unsubscribe()

    # Applying

    async def apply(self) -> dict[str, str]:
        """Bring the cluster objects to the plan; returns what happened to each object."""
        try:
            objects = manifests.manifests(self._plan, self._api.namespace, self._secrets)
        except ValueError as exc:
            raise StartFailedError(str(exc)) from exc
        outcome: dict[str, str] = {}
        for manifest in objects:
            outcome[f"{manifest['kind']}/{manifest['metadata']['name']}"] = await self._ensure(
                manifest
            )
        wid = self._plan.workload_id
        kinds_present = {manifest["kind"] for manifest in objects}
        # A previous generation may have had secrets or a port this one lacks.
        for kind, name in (
            ("Secret", manifests.secret_name(wid)),
            ("Service", manifests.service_name(wid)),
        ):
            if kind not in kinds_present and await self._api.delete(kind, name):
                outcome[f"{kind}/{name}"] = "deleted"
        for deployment in await self._api.list("Deployment", manifests.workload_labels(wid)):
            group = (deployment["metadata"].get("labels") or {}).get(LABEL_GROUP)
            name = deployment["metadata"]["name"]
            if group not in self._groups and await self._api.delete("Deployment", name):
                outcome[f"Deployment/{name}"] = "deleted"
        return outcome

    async def _ensure(self, manifest: dict[str, Any]) -> str:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        try:
            await self._api.create(manifest)
            return "created"
        except Conflict:
            pass
        try:
            live = await self._api.get(kind, name)
        except NotFound:
            raise RuntimeUnavailableError(f"{kind} {name} vanished while applying; retry") from None
        labels = live.get("metadata", {}).get("labels") or {}
        if labels.get(LABEL_MANAGED) != "true" or labels.get(LABEL_WORKLOAD) != (
            self._plan.workload_id
        ):
            raise StartFailedError(f"{kind} {name} exists and is not managed by this workload")
        patch = _patch_for(manifest, live)
        if patch is None:
            return "unchanged"
        await self._api.patch(kind, name, patch)
        return "patched"

    # Reading

    def _statuses(self, found: list[dict[str, Any]]) -> list[ReplicaStatus]:
        indexes = self._assign_indexes(found)
        entry = self._plan.groups[0].name
        statuses = []
        for pod in found:
            group = self._groups.get(pods.group(pod))
            if pods.group(pod) == entry:
                address = self._entry_address
            else:
                address = pods.pod_address(pod, group.primary.port if group else None)
            statuses.append(
                pods.replica_status(pod, index=indexes[pods.name(pod)], address=address)
            )
        return statuses

    def _assign_indexes(self, found: list[dict[str, Any]]) -> dict[str, int]:
        """Stable ordinals per group: a pod keeps its index; new pods take the lowest free one."""
        names: dict[str, list[str]] = {}
        for pod in found:  # already oldest first
            names.setdefault(pods.group(pod), []).append(pods.name(pod))
        result: dict[str, int] = {}
        for group, members in names.items():
            known = {n: i for n, i in self._indexes.get(group, {}).items() if n in members}
            used = set(known.values())
            for member in members:
                if member not in known:
                    known[member] = next(i for i in range(len(used) + 1) if i not in used)
                    used.add(known[member])
            self._indexes[group] = known
            result.update(known)
        return result

    async def _failure(self, found: list[dict[str, Any]]) -> str | None:
        """Raise for what can never start; describe a crash loop (with its last log lines)."""
        for pod in found:
            group = self._groups.get(pods.group(pod))
            if group is None or pods.generation(pod) != self._plan.generation:
                continue  # old generations and removed groups are going away anyway
            images = {container.name: container.image for container in group.containers}
            problem = pods.problem(pod, images, self._policy.crash_loop_limit)
            if problem is None:
                continue
            if problem.kind == "image":
                raise ImageNotFoundError(problem.message)
            if problem.kind == "start":
                raise StartFailedError(problem.message)
            return problem.message + await self._last_lines(problem.pod, problem.container)
        return None

    async def _last_lines(self, pod: str, container: str) -> str:
        try:
            text = await self._api.read_log(
                pod,
                container,
                previous=True,
                tail_lines=REASON_LINES,
                limit_bytes=REASON_LINES * LOG_LINE_BYTES,
            )
        except (RuntimeError_, NotFound):
            return ""  # the explanation is still useful without the log lines
        lines = last_lines([clip(line, REASON_LINE_BYTES) for line in text.splitlines()])
        return f"; last log lines: {lines}" if lines else ""

    def _events(
        self, statuses: list[ReplicaStatus], by_name: dict[str, dict[str, Any]]
    ) -> list[RuntimeEvent]:
        """Only what changed since the last tick (or the last recorded status)."""
        events = []
        for status in statuses:
            before = self._seen.get(status.name)
            details: dict[str, str | int | float | bool | None] = {
                "replica": status.name,
                "group": status.group,
                "generation": status.generation,
            }
            if status.restarts > (before.restarts if before else 0):
                last = _last_run(by_name[status.name])
                message = f"replica {status.name} restarted ({status.restarts} so far); {last}"
                events.append(
                    RuntimeEvent(
                        type="replica_restarted",
                        message=message,
                        details={**details, "restarts": status.restarts},
                    )
                )
            if status.ready != (before.ready if before else False):
                kind = "replica_ready" if status.ready else "replica_not_ready"
                message = f"replica {status.name} is {'ready' if status.ready else 'not ready'}"
                events.append(RuntimeEvent(type=kind, message=message, details=details))
            if status.state == "crashed" and (before is None or before.state != "crashed"):
                message = f"replica {status.name} failed: {status.message}"
                events.append(RuntimeEvent(type="replica_failed", message=message, details=details))
        return events

    async def _deployment_events(self, statuses: list[ReplicaStatus]) -> list[RuntimeEvent]:
        """When pods are missing, say why (quota, admission...) from Deployment conditions."""
        counts: dict[str, int] = {}
        for status in statuses:
            if status.generation == self._plan.generation and status.state != "terminated":
                counts[status.group] = counts.get(status.group, 0) + 1
        missing = any(counts.get(g.name, 0) < g.replicas for g in self._plan.groups)
        now = time.monotonic()
        if not missing or now - self._conditions_checked < _CONDITION_CHECK_SECONDS:
            return []
        self._conditions_checked = now
        labels = manifests.workload_labels(self._plan.workload_id)
        events = []
        for deployment in await self._api.list("Deployment", labels):
            name = deployment["metadata"]["name"]
            message = _blocking_condition(deployment)
            if message and self._condition_messages.get(name) != message:
                events.append(
                    RuntimeEvent(
                        type="replicas_not_created",
                        message=f"{name}: {message}",
                        details={"deployment": name},
                    )
                )
            self._condition_messages[name] = message or ""
        return events


def _patch_for(desired: dict[str, Any], live: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch that makes `live` match `desired`, or None if it already does."""
    if desired["kind"] == "Secret":
        live_data = live.get("data") or {}
        same_labels = (live["metadata"].get("labels") or {}) == desired["metadata"]["labels"]
        if live_data == desired["data"] and same_labels:
            return None
        # Keys no longer wanted must be nulled out: a merge patch keeps keys it does not name.
        removed = {key: None for key in live_data if key not in desired["data"]}
        return {**desired, "data": {**removed, **desired["data"]}}
    live_hash = (live["metadata"].get("annotations") or {}).get(manifests.ANNOTATION_SPEC_HASH)
    desired_hash = desired["metadata"]["annotations"][manifests.ANNOTATION_SPEC_HASH]
    # Replicas are compared too: halt() scales to 0 without changing the hash.
    same_replicas = (live.get("spec") or {}).get("replicas") == desired["spec"].get("replicas")
    if live_hash == desired_hash and same_replicas:
        return None
    return desired


def _last_run(pod: dict[str, Any]) -> str:
    for status in pods.container_statuses(pod):
        if (status.get("lastState") or {}).get("terminated"):
            return f"container '{status.get('name')}' last run: {pods.last_termination(status)}"
    return "no exit recorded"


def _blocking_condition(deployment: dict[str, Any]) -> str | None:
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        stuck = condition.get("type") == "ReplicaFailure" and condition.get("status") == "True"
        expired = condition.get("reason") == "ProgressDeadlineExceeded"
        if stuck or expired:
            return str(condition.get("message") or condition.get("reason") or "no message")
    return None
