"""The supervisor against the emulated API server: applying, retrying, reading pods, failing."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable

import kmock
import pytest

from models.plan import RunPlan, SecretEnv
from runtimes.base import Observation
from runtimes.errors import ImageNotFoundError, StartFailedError
from runtimes.kubernetes import KubernetesRuntime, KubernetesSupervisor
from runtimes.kubernetes.manifests import ANNOTATION_SPEC_HASH
from tests.runtimes.kubernetes.cluster import (
    NAMESPACE,
    SECRET_ID,
    SECRET_VALUE,
    WID,
    graph_plan,
    live,
    pod,
    put,
    remove,
    single_plan,
    versions,
)

SECRETS = {SECRET_ID: SECRET_VALUE}
WEB = f"wapi-{WID}-web"
MODEL = f"wapi-{WID}-model"


WEB_BC = {"web-b", "web-c"}


async def observe(
    supervisor: KubernetesSupervisor, done: Callable[[Observation], bool]
) -> Observation:
    """Wait for the pod watch to report, and tick, until `done`: the first tick lists, later
    ones read what the watch saw. Returns the last observation with every event on the way."""
    events = []
    for _ in range(100):
        await supervisor.wait(0.2)
        observation = await supervisor.tick()
        events += observation.events
        if done(observation):
            return observation.model_copy(update={"events": events})
    raise AssertionError(f"the watch never showed it; last: {observation}")


def supervise(runtime: KubernetesRuntime, plan: RunPlan, **kw: object) -> KubernetesSupervisor:
    supervisor = runtime.supervisor(plan, SECRETS, [])
    assert isinstance(supervisor, KubernetesSupervisor)
    return supervisor


async def test_first_tick_creates_deployments_service_and_secret(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    observation = await supervise(runtime, graph_plan()).tick()

    assert observation.replicas == []  # no kubelet here: nobody has created pods yet
    deployments = live(cluster, "Deployment")
    assert sorted(deployments) == [MODEL, WEB]
    assert deployments[MODEL]["spec"]["replicas"] == 2
    assert sorted(live(cluster, "Service")) == [f"wapi-{WID}"]
    secret = live(cluster, "Secret")[f"wapi-{WID}-secrets"]
    assert base64.b64decode(secret["data"][SECRET_ID]).decode() == SECRET_VALUE
    env = deployments[WEB]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": f"wapi-{WID}-secrets",
            "key": SECRET_ID}}} in env  # fmt: skip


async def test_a_retried_apply_duplicates_nothing_and_writes_nothing(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    first = await supervise(runtime, graph_plan()).apply()
    assert set(first.values()) == {"created"}

    # A retried activity (new worker, same plan) starts a fresh supervisor.
    again = await supervise(runtime, graph_plan()).apply()

    assert set(again.values()) == {"unchanged"}
    assert len(live(cluster, "Deployment")) == 2
    assert len(live(cluster, "Service")) == 1 and len(live(cluster, "Secret")) == 1
    assert versions(cluster, "Deployment", WEB) == 1  # never patched
    assert not list(cluster["patch"])


async def test_changing_replicas_patches_in_place(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await supervise(runtime, single_plan(replicas=2)).apply()
    outcome = await supervise(runtime, single_plan(replicas=5)).apply()

    assert outcome[f"Deployment/{WEB}"] == "patched"
    assert live(cluster, "Deployment")[WEB]["spec"]["replicas"] == 5
    assert versions(cluster, "Deployment", WEB) == 2
    [patch] = [r for r in cluster["patch"] if r.name == WEB]
    assert patch.headers["Content-Type"] == "application/merge-patch+json"


async def test_a_new_generation_rolls_the_template_and_drops_removed_groups(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await supervise(runtime, graph_plan(generation=1)).apply()
    before = live(cluster, "Deployment")[WEB]["metadata"]["annotations"][ANNOTATION_SPEC_HASH]

    outcome = await supervise(runtime, single_plan(generation=2)).apply()

    assert outcome[f"Deployment/{MODEL}"] == "deleted"
    deployments = live(cluster, "Deployment")
    assert sorted(deployments) == [WEB]
    template = deployments[WEB]["spec"]["template"]
    assert template["metadata"]["annotations"]["workload-api.generation"] == "2"
    assert deployments[WEB]["metadata"]["annotations"][ANNOTATION_SPEC_HASH] != before


async def test_secret_keys_no_longer_used_are_removed(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await supervise(runtime, single_plan()).apply()
    other = "5ec0000000000000000000bb"
    plan = single_plan(generation=2, secret_env=[SecretEnv(name="OTHER", secret_id=other)])

    await runtime.supervisor(plan, {other: "v2"}, []).tick()

    data = live(cluster, "Secret")[f"wapi-{WID}-secrets"]["data"]
    assert data == {other: base64.b64encode(b"v2").decode()}  # the old value is gone


async def test_an_object_of_someone_else_is_not_taken_over(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await put(
        cluster, {"kind": "Service", "metadata": {"name": f"wapi-{WID}", "labels": {"app": "x"}}}
    )
    with pytest.raises(StartFailedError, match="not managed by this workload"):
        await supervise(runtime, single_plan()).tick()


async def test_pods_are_reported_as_replicas(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await put(cluster, pod("web-b", created="2026-01-01T00:00:02Z", ready=False, restarts=2))
    await put(cluster, pod("web-a", created="2026-01-01T00:00:01Z"))
    await put(cluster, pod("model-a", group="model", ip="10.1.0.9"))
    other = pod("stranger")
    other["metadata"]["labels"]["workload-api.workload"] = "someone-else"
    await put(cluster, other)

    observation = await supervise(runtime, graph_plan()).tick()

    replicas = {r.name: r for r in observation.replicas}
    assert sorted(replicas) == ["model-a", "web-a", "web-b"]  # not the other workload's pod
    web_a, web_b, model_a = replicas["web-a"], replicas["web-b"], replicas["model-a"]
    assert (web_a.index, web_a.state, web_a.ready, web_a.restarts) == (0, "running", True, 0)
    assert (web_b.index, web_b.ready, web_b.restarts) == (1, False, 2)
    assert web_a.address == f"wapi-{WID}.{NAMESPACE}.svc:8080"  # entry group: the Service
    assert model_a.address == "10.1.0.9:9000"  # other groups: the pod itself
    assert web_a.started_at is not None and web_a.started_at.year == 2026
    assert not observation.all_ready(graph_plan())  # model wants 2 replicas, web-b not ready


async def test_indexes_stay_with_their_pods(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await put(cluster, pod("web-a", created="2026-01-01T00:00:01Z"))
    await put(cluster, pod("web-b", created="2026-01-01T00:00:02Z"))
    supervisor = supervise(runtime, single_plan())
    await supervisor.tick()

    await remove(cluster, "Pod", "web-a")
    await put(cluster, pod("web-c", created="2026-01-01T00:00:03Z"))
    observation = await observe(supervisor, lambda o: {r.name for r in o.replicas} == WEB_BC)

    assert {r.name: r.index for r in observation.replicas} == {"web-b": 1, "web-c": 0}


async def test_events_are_emitted_on_changes_only(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await put(cluster, pod("web-a", ready=False))
    supervisor = supervise(runtime, single_plan())
    assert (await supervisor.tick()).events == []

    await put(cluster, pod("web-a", ready=True))
    ready = await observe(supervisor, lambda o: o.replicas[0].ready)
    assert [e.type for e in ready.events] == ["replica_ready"]
    assert (await supervisor.tick()).events == []  # nothing changed

    await put(cluster, pod("web-a", ready=False, restarts=1, last_exit=(137, "OOMKilled", "")))
    events = (await observe(supervisor, lambda o: not o.replicas[0].ready)).events
    assert [e.type for e in events] == ["replica_restarted", "replica_not_ready"]
    assert "exit code 137 (OOMKilled)" in events[0].message
    assert events[0].details["restarts"] == 1


async def test_previous_status_avoids_repeating_events_after_a_worker_restart(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await put(cluster, pod("web-a", restarts=3))
    first = await supervise(runtime, single_plan()).tick()
    assert {e.type for e in first.events} == {"replica_ready", "replica_restarted"}

    resumed = runtime.supervisor(single_plan(), SECRETS, first.replicas)
    assert (await resumed.tick()).events == []


async def test_image_pull_backoff_is_image_not_found(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    message = 'Back-off pulling image "registry.example.com/team/agent:1.4"'
    await put(cluster, pod("web-a", ready=False, waiting=("ImagePullBackOff", message)))

    with pytest.raises(ImageNotFoundError) as caught:
        await supervise(runtime, single_plan()).tick()

    text = str(caught.value)
    assert "registry.example.com/team/agent:1.4" in text and "ImagePullBackOff" in text


async def test_an_old_generation_pulling_badly_is_not_this_generations_failure(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await put(cluster, pod("web-old", generation=1, ready=False, waiting=("ErrImagePull", "gone")))
    observation = await supervise(runtime, single_plan(generation=2)).tick()
    assert observation.failure is None
    assert observation.replicas[0].generation == 1


async def test_container_config_error_is_start_failed(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    reason = ("CreateContainerConfigError", 'secret "wapi-x-secrets" not found')
    await put(cluster, pod("web-a", ready=False, waiting=reason))
    with pytest.raises(StartFailedError, match="CreateContainerConfigError"):
        await supervise(runtime, single_plan()).tick()


async def test_crash_loop_within_the_limit_is_only_reported(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    crash = ("CrashLoopBackOff", "back-off 20s restarting failed container")
    await put(
        cluster, pod("web-a", ready=False, restarts=2, waiting=crash, last_exit=(3, "Error", ""))
    )
    observation = await supervise(runtime, single_plan()).tick()  # limit is 3 in the fixture
    assert observation.failure is None
    assert observation.replicas[0].state == "crashed"
    assert "replica_failed" in [e.type for e in observation.events]


async def test_crash_loop_over_the_limit_fails_naming_exit_code_and_last_lines(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    crash = ("CrashLoopBackOff", "back-off 40s restarting failed container")
    last = (3, "Error", "config file missing")
    await put(cluster, pod("web-a", ready=False, restarts=3, waiting=crash, last_exit=last))
    # The emulator keeps no logs; serve what the kubelet would for the previous run.
    cluster[f"get /api/v1/namespaces/{NAMESPACE}/pods/web-a/log"] << b"booting\nno config!\n"

    observation = await supervise(runtime, single_plan()).tick()

    assert observation.failure is not None
    assert "restarted 3 times" in observation.failure
    assert "exit code 3 (Error): config file missing" in observation.failure
    assert "no config!" in observation.failure
    [log_request] = list(cluster[f"get /api/v1/namespaces/{NAMESPACE}/pods/web-a/log"])
    assert log_request.params["previous"] == "true"


async def test_missing_pods_are_explained_from_deployment_conditions(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    supervisor = supervise(runtime, single_plan())
    await supervisor.tick()
    quota = 'pods "wapi-x" is forbidden: exceeded quota: compute, requested: nvidia.com/gpu=1'
    deployment = dict(live(cluster, "Deployment")[WEB])
    conditions = [{"type": "ReplicaFailure", "status": "True", "message": quota}]
    await put(cluster, {**deployment, "status": {"conditions": conditions}})

    fresh = supervise(runtime, single_plan())  # checks conditions on its first look
    events = (await fresh.tick()).events

    assert [e.type for e in events] == ["replicas_not_created"]
    assert "exceeded quota" in events[0].message


def pod_lists(cluster: kmock.KubernetesEmulator) -> int:
    return len([r for r in cluster["list"] if r.resource == kmock.resource("v1/pods")])


async def test_after_the_first_tick_pods_come_from_the_watch(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    """One watch for the process instead of a pod list per workload per tick: idle ticks ask
    the API server nothing, and a change wakes the supervisor."""
    await put(cluster, pod("web-a", ready=False))
    supervisor = supervise(runtime, single_plan())
    await supervisor.tick()
    for _ in range(100):  # the watch lists once, then streams
        if runtime.watch.synced:
            break
        await asyncio.sleep(0.05)
    listed = pod_lists(cluster)
    for _ in range(3):
        await supervisor.tick()
    assert pod_lists(cluster) == listed

    await put(cluster, pod("web-a", ready=True))
    started = time.monotonic()
    await supervisor.wait(60)
    assert time.monotonic() - started < 30  # woken by the watch, not by the time limit
    ready = await observe(supervisor, lambda o: o.replicas[0].ready)
    assert [e.type for e in ready.events] == ["replica_ready"]
    assert pod_lists(cluster) == listed
