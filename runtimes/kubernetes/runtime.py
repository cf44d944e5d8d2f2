"""The Kubernetes runtime: workloads as Deployments, Services and Secrets in one namespace.

Everything the runtime creates carries the LABEL_* labels of `runtimes.base`, so any worker
(after a restart, or another replica) finds what exists by listing, never by memory, and
is owned by the workload's anchor ConfigMap, so the garbage collector removes whatever a
listing missed once the anchor goes.

Stopping scales the Deployments to zero, which deletes the pods and their logs; so `halt`
first copies each container's last lines into a ConfigMap `wapi-W-last-logs`, and `logs`
reads that while no pod is left (the interface promises stopped containers' logs).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any

from models.plan import RunPlan
from runtimes.base import LABEL_GENERATION, LogLine, ReplicaStatus, RestartPolicy, Supervisor
from runtimes.errors import RuntimeUnavailableError
from runtimes.kubernetes import logs as pod_logs
from runtimes.kubernetes import manifests, metrics, pods
from runtimes.kubernetes.client import (
    DEFAULT_TIMEOUT_SECONDS,
    ContainerWaiting,
    KubeApi,
    NotFound,
    TimeoutApiClient,
    load_configuration,
)
from runtimes.kubernetes.gpu import ClusterOptions
from runtimes.kubernetes.supervisor import KubernetesSupervisor
from runtimes.kubernetes.watch import Watches

# Deleted in this order: nothing new starts from a Deployment while its Secret goes away;
# the ConfigMaps (kept logs, then the anchor) last.
_REMOVAL_ORDER = ("Deployment", "Service", "Secret", "ConfigMap")
# What halt keeps of each container: its last lines, within a ConfigMap's 1 MiB in total.
KEPT_LOG_LINES = 1000
KEPT_LOG_BYTES = 900 * 1024


class KubernetesRuntime:
    """Runs workloads in `namespace` through the official client.

    `configuration` is a `kubernetes.client.Configuration`; by default the in-cluster service
    account, else the kubeconfig. `api_client_factory` builds the ApiClient from it (tests and
    callers with special transports); the default adds a per-request timeout.
    """

    name = "kubernetes"

    def __init__(
        self,
        namespace: str,
        configuration: Any | None = None,
        restart_policy: RestartPolicy | None = None,
        *,
        api_client_factory: Callable[[Any], Any] | None = None,
        request_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        options: ClusterOptions | None = None,
    ) -> None:
        configuration = configuration if configuration is not None else load_configuration()
        if api_client_factory is None:
            api_client = TimeoutApiClient(configuration, timeout=request_timeout)
        else:
            api_client = api_client_factory(configuration)
        self.namespace = namespace
        self.restart_policy = restart_policy or RestartPolicy()
        self.options = options or ClusterOptions()
        self.api = KubeApi(api_client, namespace)
        self.watches = Watches.of(self.api)  # one set for every supervisor of this process

    async def ping(self) -> None:
        try:
            await self.api.ping()
        except NotFound as exc:  # a real API server always serves apps/v1 Deployments
            raise RuntimeUnavailableError(f"{self.api.host} does not serve Deployments") from exc

    def supervisor(
        self,
        plan: RunPlan,
        secrets: Mapping[str, str],
        previous: list[ReplicaStatus],
    ) -> Supervisor:
        return KubernetesSupervisor(
            self.api, plan, secrets, previous, self.restart_policy, self.options, self.watches
        )

    async def halt(self, workload_id: str) -> None:
        """Keep the pods' last log lines, then scale every Deployment to zero; the objects
        (and their config) stay for a restart."""
        labels = manifests.workload_labels(workload_id)
        await self._keep_last_logs(workload_id)
        for deployment in await self.api.list("Deployment", labels):
            if (deployment.get("spec") or {}).get("replicas") != 0:
                name = deployment["metadata"]["name"]
                try:
                    await self.api.patch("Deployment", name, {"spec": {"replicas": 0}})
                except NotFound:
                    continue  # removed meanwhile: halted enough

    async def remove(self, workload_id: str, *, keep_generation: int | None = None) -> int:
        """Delete the workload's objects (all, or those not of `keep_generation`)."""
        labels = manifests.workload_labels(workload_id)
        removed = 0
        for kind in _REMOVAL_ORDER:
            if kind == "ConfigMap" and keep_generation is not None:
                continue  # the anchor and kept logs belong to the workload, not a generation
            items = await self.api.list(kind, labels)
            items.sort(key=_is_anchor)  # the anchor goes last
            for item in items:
                meta = item["metadata"]
                generation = (meta.get("labels") or {}).get(LABEL_GENERATION)
                if keep_generation is not None and generation == str(keep_generation):
                    continue
                if await self.api.delete(kind, meta["name"]):
                    removed += 1
        return removed

    async def logs(
        self,
        workload_id: str,
        *,
        replica: str | None = None,
        container: str | None = None,
        tail: int | None = None,
        since: datetime | None = None,
        follow: bool = False,
    ) -> AsyncIterator[LogLine]:
        found = await self.api.list("Pod", manifests.workload_labels(workload_id))
        found.sort(key=pods.creation_key)
        targets = [
            (pods.name(pod), str(spec["name"]))
            for pod in found
            if replica is None or pods.name(pod) == replica
            for spec in (pod.get("spec") or {}).get("containers") or []
            if container is None or spec.get("name") == container
        ]
        if not found:
            kept = await self._kept_logs(workload_id, replica, container)
            for line in pod_logs.merge(kept, tail, since):
                yield line
            return
        if follow:
            # aclosing: when our caller stops, the streams (and their threads) stop now.
            async with contextlib.aclosing(
                pod_logs.follow(self.api, targets, tail, since)
            ) as lines:
                async for line in lines:
                    yield line
            return
        for line in await pod_logs.read(self.api, targets, tail, since):
            yield line

    async def _keep_last_logs(self, workload_id: str) -> None:
        found = await self.api.list("Pod", manifests.workload_labels(workload_id))
        texts: dict[str, str] = {}
        budget = KEPT_LOG_BYTES
        for pod in sorted(found, key=pods.creation_key, reverse=True):  # newest first
            for spec in (pod.get("spec") or {}).get("containers") or []:
                if budget <= 0:
                    break
                try:
                    text = await self.api.read_log(
                        pods.name(pod),
                        spec["name"],
                        timestamps=True,
                        tail_lines=KEPT_LOG_LINES,
                        limit_bytes=budget,
                    )
                except (NotFound, ContainerWaiting):
                    continue
                texts[f"{pods.name(pod)}.{spec['name']}"] = text
                budget -= len(text.encode())
        if not texts:
            return  # nothing ran: keep what an earlier stop kept
        keeper = manifests.build_kept_logs(workload_id, self.namespace, texts)
        with contextlib.suppress(NotFound):
            anchor = await self.api.get("ConfigMap", manifests.anchor_name(workload_id))
            keeper["metadata"]["ownerReferences"] = [manifests.owner_reference(anchor)]
        await self.api.apply(keeper)

    async def _kept_logs(
        self, workload_id: str, replica: str | None, container: str | None
    ) -> dict[tuple[str, str], str]:
        try:
            keeper = await self.api.get("ConfigMap", manifests.kept_logs_name(workload_id))
        except NotFound:
            return {}
        kept = {}
        for key, text in (keeper.get("data") or {}).items():
            pod, _, name = str(key).rpartition(".")
            if (replica is None or pod == replica) and (container is None or name == container):
                kept[pod, name] = str(text)
        return kept

    async def cpu_utilization(self, workload_id: str) -> dict[str, float]:
        """From the metrics API (`metrics.py`); {} on a cluster that does not serve it."""
        labels = manifests.workload_labels(workload_id)
        try:
            used = await self.api.pod_metrics(labels)
        except NotFound:
            return {}
        return metrics.utilization(await self.api.list("Pod", labels), used)

    async def close(self) -> None:
        self.watches.close()
        self.api.api_client.close()


def _is_anchor(item: dict[str, Any]) -> bool:
    return (item["metadata"].get("labels") or {}).get(manifests.LABEL_ROLE) == "anchor"
