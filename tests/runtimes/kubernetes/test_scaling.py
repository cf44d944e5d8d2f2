"""The autoscaler's counts on the Kubernetes runtime (against the emulated API server): its
decisions reach a workload's plan through the same `scale` Update on both runtimes, so here
the plan's count goes 1 -> 3 -> 0 -> 1 and the Deployment follows; at zero the supervisor
reports the workload ready (it stays `running`) and asks for nothing."""

from __future__ import annotations

import kmock

from runtimes.kubernetes import KubernetesRuntime, KubernetesSupervisor
from tests.runtimes.kubernetes.cluster import (
    SECRET_ID,
    SECRET_VALUE,
    WID,
    live,
    pod,
    put,
    single_plan,
)

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
