"""Supervising one generation on Kubernetes: apply the plan (`apply.py`), then read pods.

The first tick lists the workload's pods; later ticks read pods, Deployments, Services and
the entry Service's EndpointSlices (the addresses the gateway routes to) from the process's
watches (`watch.py`), and `wait()` sleeps until one of them changes. A Deployment or Service
of the plan that the watch shows deleted or changed (a `kubectl scale`, an edit) is applied
again: drift is repaired on the next tick, seconds after it happened. The kubelet does the
probing and restarting; we report and explain.

(Over 300 lines: one generation's whole view, from subscribing to explaining what it sees, is
read here in one place; applying and watching live in `apply.py` and `watch.py`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from models.plan import RunPlan
from runtimes.base import (
    Observation,
    ReplicaStatus,
    RestartPolicy,
    RuntimeEvent,
)
from runtimes.errors import (
    ImageNotFoundError,
    RuntimeError_,
    StartFailedError,
)
from runtimes.kubernetes import manifests, pods
from runtimes.kubernetes.apply import Applier
from runtimes.kubernetes.client import ContainerWaiting, KubeApi, NotFound
from runtimes.kubernetes.gpu import ClusterOptions
from runtimes.kubernetes.watch import SERVICE_NAME_LABEL, Watches
from runtimes.output import LOG_LINE_BYTES, REASON_LINE_BYTES, REASON_LINES, clip, last_lines

# Missing pods are explained from Deployment conditions, at most this often (one extra list).
_CONDITION_CHECK_SECONDS = 30.0
# While a watch is down, look at the cluster this often instead.
_POLL_SECONDS = 2.0


class KubernetesSupervisor:
    def __init__(
        self,
        api: KubeApi,
        plan: RunPlan,
        secrets: Mapping[str, str],
        previous: list[ReplicaStatus],
        restart_policy: RestartPolicy,
        options: ClusterOptions,
        watches: Watches,
    ) -> None:
        self._api = api
        self._applier = Applier(api, plan, secrets, options)
        self._watches = watches
        self._listed = False  # the first tick lists; later ones read the watches
        self._changed = asyncio.Event()
        self._unsubscribe: list[Callable[[], None]] = []
        self._plan = plan
        self._policy = restart_policy
        self._applied = False
        self._seen = {status.name: status for status in previous}
        self._indexes: dict[str, dict[str, int]] = {}
        for status in previous:
            self._indexes.setdefault(status.group, {})[status.name] = status.index
        self._groups = {group.name: group for group in plan.groups}
        self._old_secrets_pruned = False
        self._condition_messages: dict[str, str] = {}
        self._conditions_checked = float("-inf")

    async def tick(self) -> Observation:
        events = []
        if not self._applied:
            await self.apply()
            self._applied = True
        else:
            events += await self._repair_drift()
        if not self._unsubscribe:  # from the first tick on: it needs the event loop
            self._subscribe()
        wid = self._plan.workload_id
        if self._listed and self._watches.pods.synced:
            found = self._watches.pods.objects(wid)
        else:
            found = await self._api.list("Pod", manifests.workload_labels(wid))
            self._listed = True
        found.sort(key=pods.creation_key)
        statuses = self._statuses(found, await self._ready_endpoints())
        failure = await self._failure(found)
        await self._prune_old_secrets(found)
        events += self._events(statuses, {pods.name(pod): pod for pod in found})
        events += await self._deployment_events(statuses)
        self._seen = {status.name: status for status in statuses}
        return Observation(replicas=statuses, events=events, failure=failure)

    async def wait(self, at_most: float) -> bool:
        polling = not self._watches.synced
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
        """Stop listening; the runtime owns the API client and the watches; pods keep running."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

    def _subscribe(self) -> None:
        wid, wake = self._plan.workload_id, self._changed.set
        watches = self._watches
        self._unsubscribe = [
            watches.pods.subscribe(wid, wake),
            watches.deployments.subscribe(wid, wake),
            watches.services.subscribe(wid, wake),
            watches.endpoint_slices.subscribe(manifests.service_name(wid), wake),
        ]

    async def apply(self) -> dict[str, str]:
        """Bring the cluster objects to the plan; returns what happened to each object."""
        return await self._applier.apply()

    async def _repair_drift(self) -> list[RuntimeEvent]:
        """Apply the plan again when the watches show one of its Deployments or Services
        deleted or changed (a `kubectl scale`, an edit, a deleted anchor taking everything
        with it through garbage collection).

        The watch only raises the suspicion (it may not have seen our own apply yet): apply()
        reads each object first and writes only what really differs."""
        watches = (self._watches.deployments, self._watches.services)
        if not all(watch.synced for watch in watches):
            return []  # until they list again, supervisors poll pods and repair nothing
        wid = self._plan.workload_id
        live = {
            (watch.kind, item["metadata"]["name"]): item
            for watch in watches
            for item in watch.objects(wid)
        }
        drifted = self._applier.drift(live)
        if not drifted:
            return []
        events = []
        for name, outcome in (await self.apply()).items():
            if outcome == "unchanged":
                continue
            kind, _, short = name.partition("/")
            if outcome == "deleted":
                message = f"{name} is not in the plan; deleted it"
            else:
                was = drifted.get((kind, short), "changed")
                message = f"{name} was {was} outside Workload API; {outcome} it again"
            events.append(
                RuntimeEvent(
                    type="drift_repaired",
                    message=message,
                    details={"kind": kind, "name": short, "outcome": outcome},
                )
            )
        return events

    async def _prune_old_secrets(self, found: list[dict[str, Any]]) -> None:
        """Once no pod of an older generation is left, no one reads older Secrets."""
        if self._old_secrets_pruned or not self._applied:
            return
        if any(pods.generation(pod) != self._plan.generation for pod in found):
            return
        labels = manifests.workload_labels(self._plan.workload_id)
        for secret in await self._api.list("Secret", labels):
            name = secret["metadata"]["name"]
            if name != self._applier.secret_name:
                await self._api.delete("Secret", name)
        self._old_secrets_pruned = True

    # Reading

    async def _ready_endpoints(self) -> dict[str, str]:
        """Pod name -> `ip:port` of the entry Service's ready endpoints, as kube-proxy sees
        them. Only these take invoke traffic: pods of other groups, and entry pods the
        endpoints controller has not (or no longer) marked ready, get no address."""
        entry = self._plan.groups[0]
        port = entry.primary.port
        if port is None:
            return {}
        service = manifests.service_name(self._plan.workload_id)
        if self._watches.endpoint_slices.synced:
            slices = self._watches.endpoint_slices.objects(service)
        else:
            slices = await self._api.list("EndpointSlice", {SERVICE_NAME_LABEL: service})
        return pods.ready_endpoints(slices, port)

    def _statuses(
        self, found: list[dict[str, Any]], endpoints: dict[str, str]
    ) -> list[ReplicaStatus]:
        indexes = self._assign_indexes(found)
        entry = self._plan.groups[0].name
        statuses = []
        for pod in found:
            name = pods.name(pod)
            address = endpoints.get(name) if pods.group(pod) == entry else None
            statuses.append(pods.replica_status(pod, index=indexes[name], address=address))
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
        except (RuntimeError_, NotFound, ContainerWaiting):
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
        if self._watches.deployments.synced:
            found = self._watches.deployments.objects(self._plan.workload_id)
        else:
            found = await self._api.list("Deployment", labels)
        events = []
        for deployment in found:
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
