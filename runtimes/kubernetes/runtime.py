"""The Kubernetes runtime: workloads as Deployments, a Service and a Secret in one namespace.

Everything the runtime creates carries the LABEL_* labels of `runtimes.base`, so any worker
(after a restart, or another replica) finds what exists by listing, never by memory.
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
from runtimes.kubernetes import manifests, pods
from runtimes.kubernetes.client import (
    DEFAULT_TIMEOUT_SECONDS,
    KubeApi,
    NotFound,
    TimeoutApiClient,
    load_configuration,
)
from runtimes.kubernetes.supervisor import KubernetesSupervisor
from runtimes.kubernetes.watch import PodWatch

# Deleted in this order: nothing new starts from a Deployment while its Secret goes away.
_REMOVAL_ORDER = ("Deployment", "Service", "Secret")


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
    ) -> None:
        configuration = configuration if configuration is not None else load_configuration()
        if api_client_factory is None:
            api_client = TimeoutApiClient(configuration, timeout=request_timeout)
        else:
            api_client = api_client_factory(configuration)
        self.namespace = namespace
        self.restart_policy = restart_policy or RestartPolicy()
        self.api = KubeApi(api_client, namespace)
        self.watch = PodWatch(self.api)  # one for every supervisor of this process

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
            self.api, plan, secrets, previous, self.restart_policy, self.watch
        )

    async def halt(self, workload_id: str) -> None:
        """Scale every Deployment to zero; the objects (and their config) stay for a restart."""
        labels = manifests.workload_labels(workload_id)
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
            for item in await self.api.list(kind, labels):
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

    async def cpu_utilization(self, workload_id: str) -> dict[str, float]:
        """Not read yet: the figures would come from the metrics API (metrics.k8s.io), which
        the emulator the tests use does not serve. A group scaled on CPU keeps its count."""
        return {}

    async def close(self) -> None:
        self.watch.close()
        self.api.api_client.close()
