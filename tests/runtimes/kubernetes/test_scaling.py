"""The autoscaler's counts on the Kubernetes runtime (against the emulated API server): its
decisions reach a workload's plan through the same `scale` Update on both runtimes, so here
the plan's count goes 1 -> 3 -> 0 -> 1 and the Deployment follows; at zero the supervisor
reports the workload ready (it stays `running`) and asks for nothing. CPU figures come from
the metrics API's PodMetrics against the pods' CPU limits, and a group scaled on CPU scales."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kmock

from catalog import database
from config.settings import Settings
from runtimes.kubernetes import KubernetesRuntime, KubernetesSupervisor
from services.autoscaler import Autoscaler
from tests.runtimes.kubernetes.cluster import (
    SECRET_ID,
    SECRET_VALUE,
    WID,
    live,
    pod,
    pod_metrics,
    put,
    single_plan,
)
from tests.test_autoscaling import RecordingLifecycle, add_workload, reported

WEB = f"wapi-{WID}-web"
SECRETS = {SECRET_ID: SECRET_VALUE}


async def test_the_deployment_follows_the_autoscaled_count_down_to_zero(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    for count in (1, 3, 0, 1):
        supervisor = runtime.supervisor(single_plan(replicas=count), SECRETS, [])
        assert isinstance(supervisor, KubernetesSupervisor)
        await supervisor.apply()
        assert live(cluster, "Deployment")[WEB]["spec"]["replicas"] == count

    at_zero = single_plan(replicas=0)
    supervisor = runtime.supervisor(at_zero, SECRETS, [])
    observation = await supervisor.tick()
    assert observation.replicas == [] and observation.failure is None
    assert observation.all_ready(at_zero)  # zero wanted, zero ready: still running
    assert not [e for e in observation.events if e.type == "replicas_not_created"]


async def test_scaling_up_from_zero_waits_for_a_ready_pod(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    one = single_plan(replicas=1)
    supervisor = runtime.supervisor(one, SECRETS, [])
    observation = await supervisor.tick()
    assert not observation.all_ready(one)  # the kubelet has not started the pod yet
    await put(cluster, pod("web-a", ready=True))
    ready = await runtime.supervisor(one, SECRETS, []).tick()
    assert ready.all_ready(one)
    assert [r.address for r in ready.replicas if r.ready]


def limited(name: str, cpu: str, **fields: Any) -> dict[str, Any]:
    """A pod whose container runs with a CPU limit, as the runtime's Deployments ask."""
    found = pod(name, **fields)
    found["spec"]["containers"][0]["resources"] = {"limits": {"cpu": cpu, "memory": "256Mi"}}
    return found


async def test_cpu_figures_come_from_pod_metrics_against_the_limits(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    assert await runtime.cpu_utilization(WID) == {}  # no reading yet
    await put(cluster, limited("web-a", "500m", ip="10.1.0.7"))
    await put(cluster, limited("web-b", "1", ip="10.1.0.8"))
    await put(cluster, limited("web-c", "1", phase="Pending", ready=False))
    await put(cluster, limited("api-a", "250m", group="api"))
    await put(cluster, pod_metrics("web-a", "450m"))  # 90% of 0.5 core
    await put(cluster, pod_metrics("web-b", "300000000n"))  # 30% of 1 core
    await put(cluster, pod_metrics("web-c", "1"))  # not running: left out
    await put(cluster, pod_metrics("api-a", "25m", group="api"))  # 10%
    found = await runtime.cpu_utilization(WID)
    assert found.keys() == {"web", "api"}
    assert round(found["web"], 6) == 60.0 and round(found["api"], 6) == 10.0


async def test_a_group_scaled_on_cpu_scales_on_the_metrics_api(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    engine = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}")
    await database.migrate(engine)
    try:
        scaling = {
            "enabled": True,
            "minReplicaCount": 1,
            "maxReplicaCount": 3,
            "policies": [{"scalingMetric": "cpuAverageUtilization", "target": 40}],
        }
        await add_workload(engine, WID, 1, scaling, group="web")
        await put(cluster, limited("web-a", "500m"))
        await put(cluster, pod_metrics("web-a", "450m"))  # 90%, target 40%: 3 replicas
        lifecycle = RecordingLifecycle()
        autoscaler = Autoscaler(
            Settings(state_dir=tmp_path), database.create_sessionmaker(engine), lifecycle,
            runtime=runtime,
        )  # fmt: skip
        for second in range(3):
            await autoscaler.tick(float(second), reported())
        [(workload, actor, replicas, reason)] = lifecycle.sent[:1]
        assert (workload, actor, replicas) == (WID, "autoscaler", {"web": 3})
        assert reason is not None and "90.00% CPU" in reason, reason
    finally:
        await engine.dispose()
