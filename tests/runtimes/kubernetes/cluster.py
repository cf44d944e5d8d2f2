"""Plans, pods and object lookups shared by the Kubernetes runtime tests.

The emulator runs no controllers and no kubelet: Deployments never create pods here. Tests
write pod objects (with the status a kubelet would report) straight into the emulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import kmock

from models.plan import ContainerPlan, GroupPlan, RunPlan, SecretEnv
from models.spec import ExecAction, Probe, TcpSocketAction
from runtimes.base import (
    LABEL_GENERATION,
    LABEL_GROUP,
    LABEL_MANAGED,
    LABEL_WORKLOAD,
    Observation,
)
from runtimes.kubernetes import KubernetesRuntime, KubernetesSupervisor

NAMESPACE = "wapi-workloads"
WID = "0123456789abcdef01234567"
SECRET_ID = "5ec0000000000000000000aa"
SECRET_VALUE = "s3cr3t-value-never-in-plain-env"
SECRETS = {SECRET_ID: SECRET_VALUE}
RESOURCES = {
    "apps/v1/deployments": "Deployment",
    "v1/services": "Service",
    "v1/secrets": "Secret",
    "v1/pods": "Pod",
    "v1/configmaps": "ConfigMap",
    "discovery.k8s.io/v1/endpointslices": "EndpointSlice",
    # The metrics API, as metrics-server serves it (read-only there; tests write it here).
    "metrics.k8s.io/v1beta1/pods": "PodMetrics",
}
_PLURALS = {kind: resource for resource, kind in RESOURCES.items()}


def main_container(**changes: Any) -> ContainerPlan:
    fields: dict[str, Any] = {
        "name": "main",
        "image": "registry.example.com/team/agent:1.4",
        "primary": True,
        "port": 8080,
        "entrypoint": ["/bin/agent"],
        "command": ["serve", "--port", "8080"],
        "env": {"LOG_LEVEL": "info"},
        "secret_env": [SecretEnv(name="API_TOKEN", secret_id=SECRET_ID)],
        "cpu": 0.5,
        "memory_bytes": 512 * 2**20,
        "gpu_count": 1,
        "readiness_probe": Probe(
            path="/ready", http_headers={"X-Probe": "yes"}, period_seconds=5, success_threshold=2
        ),
        "liveness_probe": Probe(tcp_socket=TcpSocketAction(), failure_threshold=4),
        "startup_probe": Probe(exec_=ExecAction(command=["cat", "/tmp/started"])),
    }
    fields.update(changes)
    return ContainerPlan(**fields)


def single_plan(generation: int = 1, replicas: int = 2, **changes: Any) -> RunPlan:
    group = GroupPlan(name="web", replicas=replicas, containers=[main_container(**changes)])
    return RunPlan(workload_id=WID, generation=generation, groups=[group])


def sidecar() -> ContainerPlan:
    return ContainerPlan(
        name="log-shipper",
        image="registry.example.com/team/shipper:2",
        primary=False,
        command=["--target", "http://localhost:8080"],
    )


def graph_plan(generation: int = 1) -> RunPlan:
    web = GroupPlan(name="web", replicas=1, containers=[main_container(gpu_count=0), sidecar()])
    model = GroupPlan(
        name="model",
        replicas=2,
        containers=[
            ContainerPlan(
                name="main",
                image="registry.example.com/team/model:3",
                primary=True,
                port=9000,
                gpu_count=2,
                readiness_probe=Probe(path="/v1/health"),
            )
        ],
    )
    return RunPlan(workload_id=WID, generation=generation, groups=[web, model])


def pod(
    name: str,
    *,
    group: str = "web",
    generation: int = 1,
    created: str = "2026-01-01T00:00:00Z",
    phase: str = "Running",
    ready: bool = True,
    restarts: int = 0,
    waiting: tuple[str, str] | None = None,
    last_exit: tuple[int, str, str] | None = None,
    ip: str = "10.1.0.7",
    image: str = "registry.example.com/team/agent:1.4",
) -> dict[str, Any]:
    """A pod as the API server would show it after the kubelet reported on it."""
    state: dict[str, Any] = (
        {"waiting": {"reason": waiting[0], "message": waiting[1]}}
        if waiting
        else {"running": {"startedAt": created}}
    )
    last: dict[str, Any] = {}
    if last_exit is not None:
        code, reason, message = last_exit
        last = {"terminated": {"exitCode": code, "reason": reason, "message": message}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "creationTimestamp": created,
            "labels": {
                LABEL_MANAGED: "true",
                LABEL_WORKLOAD: WID,
                LABEL_GROUP: group,
                LABEL_GENERATION: str(generation),
            },
        },
        "spec": {"containers": [{"name": "main", "image": image}]},
        "status": {
            "phase": phase,
            "podIP": ip,
            "startTime": created,
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True" if ready else "False"},
            ],
            "containerStatuses": [
                {
                    "name": "main",
                    "image": image,
                    "ready": ready,
                    "started": waiting is None,
                    "restartCount": restarts,
                    "state": state,
                    "lastState": last,
                }
            ],
        },
    }


def pod_metrics(name: str, cpu: str, *, group: str = "web") -> dict[str, Any]:
    """A PodMetrics as metrics-server answers it: the pod's labels, each container's use."""
    return {
        "apiVersion": "metrics.k8s.io/v1beta1",
        "kind": "PodMetrics",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {LABEL_MANAGED: "true", LABEL_WORKLOAD: WID, LABEL_GROUP: group},
        },
        "timestamp": "2026-01-01T00:00:00Z",
        "window": "15s",
        "containers": [{"name": "main", "usage": {"cpu": cpu, "memory": "12Mi"}}],
    }


def endpoint_slice(
    service: str, endpoints: list[tuple[str, str, bool]], *, name: str | None = None
) -> dict[str, Any]:
    """An EndpointSlice as the endpoints controller writes it: (pod, ip, ready) each."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{service}-abcde",
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [ip],
                "conditions": {"ready": ready, "serving": ready, "terminating": False},
                "targetRef": {"kind": "Pod", "name": pod, "namespace": NAMESPACE},
            }
            for pod, ip, ready in endpoints
        ],
    }


async def put(emulator: kmock.KubernetesEmulator, obj: dict[str, Any]) -> None:
    """Write an object the way a controller or kubelet would: through the API (not through
    the runtime), so watches see the change. An existing object is merge-patched."""
    meta = obj["metadata"]
    collection = _collection(emulator, obj["kind"])
    key = (kmock.resource(_PLURALS[obj["kind"]]), meta.get("namespace", NAMESPACE), meta["name"])
    exists = key in emulator.objects and not emulator.objects[key].deleted
    async with httpx.AsyncClient() as client:
        if exists:
            response = await client.patch(
                f"{collection}/{meta['name']}",
                json=obj,
                headers={"Content-Type": "application/merge-patch+json"},
            )
        else:
            response = await client.post(collection, json={"metadata": {}, **obj})
    response.raise_for_status()


async def remove(emulator: kmock.KubernetesEmulator, kind: str, name: str) -> None:
    """Delete an object through the API, as a controller or kubelet would."""
    async with httpx.AsyncClient() as client:
        response = await client.delete(f"{_collection(emulator, kind)}/{name}")
    response.raise_for_status()


def _collection(emulator: kmock.KubernetesEmulator, kind: str) -> str:
    resource = _PLURALS[kind]
    group = "api/v1" if resource.startswith("v1/") else f"apis/{resource.rsplit('/', 1)[0]}"
    plural = resource.rsplit("/", 1)[1]
    return f"{str(emulator.url).rstrip('/')}/{group}/namespaces/{NAMESPACE}/{plural}"


def live(emulator: kmock.KubernetesEmulator, kind: str) -> dict[str, dict[str, Any]]:
    """Objects of `kind` that currently exist in the emulator, by name (soft-deleted skipped)."""
    plural = kmock.resource(_PLURALS[kind])
    found = {}
    for resource, _namespace, name in list(emulator.objects):
        obj = emulator.objects[resource, _namespace, name]
        if resource == plural and not obj.deleted:
            found[name] = obj.raw
    return found


def versions(emulator: kmock.KubernetesEmulator, kind: str, name: str) -> int:
    """How many versions the object went through (create = 1, each patch adds one)."""
    obj = emulator.objects[_PLURALS[kind], NAMESPACE, name]
    return len([v for v in obj.history if v is not None])


def supervise(runtime: KubernetesRuntime, plan: RunPlan) -> KubernetesSupervisor:
    supervisor = runtime.supervisor(plan, SECRETS, [])
    assert isinstance(supervisor, KubernetesSupervisor)
    return supervisor


async def observe(
    supervisor: KubernetesSupervisor, done: Callable[[Observation], bool]
) -> Observation:
    """Wait for the watches to report, and tick, until `done`: the first tick lists, later
    ones read what the watches saw. Returns the last observation with every event on the way."""
    events = []
    for _ in range(100):
        await supervisor.wait(0.2)
        observation = await supervisor.tick()
        events += observation.events
        if done(observation):
            return observation.model_copy(update={"events": events})
    raise AssertionError(f"the watch never showed it; last: {observation}")


async def until_synced(runtime: KubernetesRuntime) -> None:
    """Until every watch of the runtime has listed (they start with the first tick)."""
    for _ in range(200):
        if runtime.watches.synced:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the watches never listed")
