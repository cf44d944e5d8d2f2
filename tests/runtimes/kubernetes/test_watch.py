"""The process's watches against the emulated API server: drift they show is repaired, and a
watch that expires (410 Gone) lists again and resumes."""

from __future__ import annotations

import kmock

from runtimes.base import RuntimeEvent
from runtimes.kubernetes import KubernetesRuntime
from runtimes.kubernetes.manifests import ANNOTATION_SPEC_HASH
from tests.runtimes.kubernetes.cluster import (
    WID,
    graph_plan,
    live,
    observe,
    pod,
    put,
    remove,
    single_plan,
    supervise,
    until_synced,
    versions,
)
from tests.runtimes.kubernetes.emulator import ApiServer

ENTRY = f"wapi-{WID}"
WEB = f"wapi-{WID}-web"


def lists_of(cluster: kmock.KubernetesEmulator, resource: str) -> int:
    return len([r for r in cluster["list"] if r.resource == kmock.resource(resource)])


def repaired(events: list[RuntimeEvent]) -> list[str]:
    return [e.message for e in events if e.type == "drift_repaired"]


async def test_a_deleted_service_is_put_back(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    supervisor = supervise(runtime, graph_plan())
    await supervisor.tick()
    await until_synced(runtime)
    before = live(cluster, "Service")[ENTRY]

    await remove(cluster, "Service", ENTRY)  # `kubectl delete service`

    observation = await observe(supervisor, lambda o: bool(repaired(o.events)))
    assert repaired(observation.events) == [
        f"Service/{ENTRY} was deleted outside Workload API; created it again"
    ]
    after = live(cluster, "Service")[ENTRY]
    assert after["metadata"]["uid"] != before["metadata"]["uid"]  # a new object
    assert after["spec"] == before["spec"]
    assert after["metadata"]["ownerReferences"] == before["metadata"]["ownerReferences"]


async def test_a_kubectl_scale_is_undone_and_status_updates_are_left_alone(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    supervisor = supervise(runtime, single_plan(replicas=2))
    await supervisor.tick()
    await until_synced(runtime)

    # The Deployment controller writing status wakes the supervisor, which writes nothing.
    applied = versions(cluster, "Deployment", WEB)
    await put(cluster, {"kind": "Deployment", "metadata": {"name": WEB}, "status": {"replicas": 2}})
    await observe(supervisor, lambda _: True)
    await observe(supervisor, lambda _: True)
    assert versions(cluster, "Deployment", WEB) == applied + 1  # the status write only

    # `kubectl scale deployment --replicas=0` (a merge patch of spec.replicas)
    await put(cluster, {"kind": "Deployment", "metadata": {"name": WEB}, "spec": {"replicas": 0}})

    observation = await observe(supervisor, lambda o: bool(repaired(o.events)))
    assert repaired(observation.events) == [
        f"Deployment/{WEB} was changed outside Workload API; applied it again"
    ]
    deployment = live(cluster, "Deployment")[WEB]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["status"] == {"replicas": 2}  # an apply leaves status to its controller
    assert ANNOTATION_SPEC_HASH in deployment["metadata"]["annotations"]


async def test_a_deleted_anchor_brings_everything_back_in_order(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    """Deleting the parent garbage-collects every object; the anchor is applied first, so the
    objects applied after it name a live owner (and are not collected again)."""
    supervisor = supervise(runtime, single_plan())
    await supervisor.tick()
    await until_synced(runtime)

    await remove(cluster, "ConfigMap", ENTRY)
    assert WEB not in live(cluster, "Deployment")  # the garbage collector took it

    await observe(supervisor, lambda _: WEB in live(cluster, "Deployment"))
    anchor = live(cluster, "ConfigMap")[ENTRY]
    for kind, name in (("Deployment", WEB), ("Service", ENTRY)):
        [owner] = live(cluster, kind)[name]["metadata"]["ownerReferences"]
        assert owner["uid"] == anchor["metadata"]["uid"]


async def test_an_expired_watch_lists_again_and_resumes(
    runtime: KubernetesRuntime, cluster: ApiServer
) -> None:
    await put(cluster, pod("web-a"))
    await put(cluster, pod("web-b", created="2026-01-01T00:00:02Z"))
    supervisor = supervise(runtime, single_plan())
    await supervisor.tick()
    await until_synced(runtime)
    listed = lists_of(cluster, "v1/pods")

    async with cluster.watches_expired("v1/pods"):
        await remove(cluster, "Pod", "web-b")  # no watch is open: only a new list shows it

    await observe(supervisor, lambda o: [r.name for r in o.replicas] == ["web-a"])
    assert cluster.gone_answered == 1
    assert lists_of(cluster, "v1/pods") == listed + 1  # the watch listed; supervisors did not

    await put(cluster, pod("web-c", created="2026-01-01T00:00:03Z"))  # streamed again
    await observe(supervisor, lambda o: [r.name for r in o.replicas] == ["web-a", "web-c"])
    assert lists_of(cluster, "v1/pods") == listed + 1
