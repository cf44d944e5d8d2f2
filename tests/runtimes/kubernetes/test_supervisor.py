"""The supervisor against the emulated API server: applying, retrying, reading pods, failing."""

from __future__ import annotations

import asyncio
import base64
import time

import kmock
import pytest

from models.plan import SecretEnv
from runtimes.errors import ImageNotFoundError, StartFailedError
from runtimes.kubernetes import KubernetesRuntime, KubernetesSupervisor
from runtimes.kubernetes.manifests import ANNOTATION_SPEC_HASH, secret_name
from tests.runtimes.kubernetes.cluster import (
    NAMESPACE,
    SECRET_ID,
    SECRET_VALUE,
    SECRETS,
    WID,
    endpoint_slice,
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

WEB = f"wapi-{WID}-web"
MODEL = f"wapi-{WID}-model"
ANCHOR = f"wapi-{WID}"
SECRET = secret_name(WID, {SECRET_ID: base64.b64encode(SECRET_VALUE.encode()).decode()})


WEB_BC = {"web-b", "web-c"}


async def test_first_tick_creates_deployments_service_and_secret(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    observation = await supervise(runtime, graph_plan()).tick()

    assert observation.replicas == []  # no kubelet here: nobody has created pods yet
    deployments = live(cluster, "Deployment")
    assert sorted(deployments) == [MODEL, WEB]
    assert deployments[MODEL]["spec"]["replicas"] == 2
    assert sorted(live(cluster, "Service")) == [f"wapi-{WID}", MODEL]  # one per group
    secret = live(cluster, "Secret")[SECRET]
    assert base64.b64decode(secret["data"][SECRET_ID]).decode() == SECRET_VALUE
    env = deployments[WEB]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": SECRET,
            "key": SECRET_ID}}} in env  # fmt: skip
    # Every write is a server-side apply by our field manager, forcing ownership back.
    writes = list(cluster["patch"])
    assert len(writes) == 1 + 2 + 2 + 1  # anchor, Deployments, Services, Secret
    assert not list(cluster["post"])
    for write in writes:
        assert write.headers["Content-Type"] == "application/apply-patch+yaml"
        assert write.params["fieldManager"] == "workload-api"
        assert write.params["force"] == "true"


async def test_one_parent_owns_everything_and_its_deletion_collects_the_rest(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await supervise(runtime, graph_plan()).apply()
    anchor = live(cluster, "ConfigMap")[ANCHOR]
    for kind in ("Deployment", "Service", "Secret"):
        for obj in live(cluster, kind).values():
            [owner] = obj["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["name"]) == ("ConfigMap", ANCHOR)
            assert owner["uid"] == anchor["metadata"]["uid"]

    await runtime.api.delete("ConfigMap", ANCHOR)  # a worker dying mid-remove leaves this

    assert live(cluster, "Deployment") == live(cluster, "Service") == live(cluster, "Secret") == {}


async def test_a_retried_apply_duplicates_nothing_and_writes_nothing(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    first = await supervise(runtime, graph_plan()).apply()
    assert set(first.values()) == {"created"}

    # A retried activity (new worker, same plan) starts a fresh supervisor.
    again = await supervise(runtime, graph_plan()).apply()

    assert set(again.values()) == {"unchanged"}
    assert len(live(cluster, "Deployment")) == 2
    assert len(live(cluster, "Service")) == 2 and len(live(cluster, "Secret")) == 1
    assert versions(cluster, "Deployment", WEB) == 1  # never written again
    assert len(list(cluster["patch"])) == 6  # the first apply's writes only


async def test_changing_replicas_applies_in_place(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await supervise(runtime, single_plan(replicas=2)).apply()
    outcome = await supervise(runtime, single_plan(replicas=5)).apply()

    assert outcome[f"Deployment/{WEB}"] == "applied"
    assert live(cluster, "Deployment")[WEB]["spec"]["replicas"] == 5
    assert versions(cluster, "Deployment", WEB) == 2


async def test_a_scaled_by_hand_deployment_is_taken_back(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await supervise(runtime, single_plan(replicas=2)).apply()
    await runtime.api.patch("Deployment", WEB, {"spec": {"replicas": 7}})  # kubectl scale

    outcome = await supervise(runtime, single_plan(replicas=2)).apply()

    assert outcome[f"Deployment/{WEB}"] == "applied"
    assert live(cluster, "Deployment")[WEB]["spec"]["replicas"] == 2


async def test_a_terminating_object_is_waited_for_not_adopted(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await supervise(runtime, single_plan()).apply()
    old_uid = live(cluster, "Deployment")[WEB]["metadata"]["uid"]
    # Deleted with a finalizer still on it: the API server answers it, marked, for a while.
    await runtime.api.patch("Deployment", WEB, {"metadata": {"finalizers": ["example.com/x"]}})
    await runtime.api.delete("Deployment", WEB)
    assert live(cluster, "Deployment")[WEB]["metadata"]["deletionTimestamp"]

    applying = asyncio.create_task(supervise(runtime, single_plan()).apply())
    await asyncio.sleep(1.2)
    assert not applying.done()  # waiting, not writing into the dying object
    assert len([r for r in cluster["patch"] if r.name == WEB]) == 2  # ours and the finalizer's
    await runtime.api.patch("Deployment", WEB, {"metadata": {"finalizers": []}})  # released

    outcome = await asyncio.wait_for(applying, 30)
    assert outcome[f"Deployment/{WEB}"] == "created"
    assert live(cluster, "Deployment")[WEB]["metadata"]["uid"] != old_uid


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


async def test_new_secret_values_are_a_new_secret_and_the_old_one_outlives_its_pods(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await supervise(runtime, single_plan()).apply()
    other = "5ec0000000000000000000bb"
    plan = single_plan(generation=2, secret_env=[SecretEnv(name="OTHER", secret_id=other)])
    await put(cluster, pod("web-old", generation=1))  # still running mid-rollout, may restart

    supervisor = runtime.supervisor(plan, {other: "v2"}, [])
    assert isinstance(supervisor, KubernetesSupervisor)
    await supervisor.tick()

    secrets = live(cluster, "Secret")
    assert len(secrets) == 2 and secrets[SECRET]["data"] == {
        SECRET_ID: base64.b64encode(SECRET_VALUE.encode()).decode()
    }  # untouched: the old pod reads what it started with
    new = next(name for name in secrets if name != SECRET)
    assert secrets[new]["immutable"] is True
    assert secrets[new]["data"] == {other: base64.b64encode(b"v2").decode()}

    await remove(cluster, "Pod", "web-old")  # the rollout finished
    await observe(supervisor, lambda _: sorted(live(cluster, "Secret")) == [new])


async def test_an_object_of_someone_else_is_not_taken_over(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await put(cluster, {"kind": "Service", "metadata": {"name": MODEL, "labels": {"app": "x"}}})
    with pytest.raises(StartFailedError, match="not managed by this workload"):
        await supervise(runtime, graph_plan()).tick()
    assert not [
        r
        for r in cluster["patch"]
        if r.name == MODEL and r.resource == kmock.resource("v1/services")
    ]


async def test_pods_are_reported_as_replicas(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await put(cluster, pod("web-b", created="2026-01-01T00:00:02Z", ready=False, restarts=2))
    await put(cluster, pod("web-a", created="2026-01-01T00:00:01Z"))
    await put(cluster, pod("model-a", group="model", ip="10.1.0.9"))
    other = pod("stranger")
    other["metadata"]["labels"]["workload-api.workload"] = "someone-else"
    await put(cluster, other)
    ready = [("web-a", "10.1.0.7", True), ("web-b", "10.1.0.8", False)]
    await put(cluster, endpoint_slice(f"wapi-{WID}", ready))
    await put(cluster, endpoint_slice(MODEL, [("model-a", "10.1.0.9", True)]))

    observation = await supervise(runtime, graph_plan()).tick()

    replicas = {r.name: r for r in observation.replicas}
    assert sorted(replicas) == ["model-a", "web-a", "web-b"]  # not the other workload's pod
    web_a, web_b, model_a = replicas["web-a"], replicas["web-b"], replicas["model-a"]
    assert (web_a.index, web_a.state, web_a.ready, web_a.restarts) == (0, "running", True, 0)
    assert (web_b.index, web_b.ready, web_b.restarts) == (1, False, 2)
    # Entry group: its Service's ready endpoints, pod by pod (the gateway balances across them);
    # not ready there: no address. Other groups: none, so invoke traffic never reaches them.
    assert (web_a.address, web_b.address) == ("10.1.0.7:8080", None)
    assert model_a.address is None
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


async def test_a_failing_image_pull_is_retried_then_succeeds(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    """A registry 5xx or rate limit: the kubelet backs off and pulls again. Not a failure; the
    reason is the replica's message (the ready timeout's error quotes it)."""
    message = "failed to pull: 503 Service Unavailable (registry.example.com)"
    await put(cluster, pod("web-a", ready=False, waiting=("ErrImagePull", message)))
    supervisor = supervise(runtime, single_plan())

    observation = await supervisor.tick()
    assert observation.failure is None
    [replica] = observation.replicas
    assert replica.state == "starting"
    assert "ErrImagePull, retrying" in replica.message and "503" in replica.message

    backoff = 'Back-off pulling image "registry.example.com/team/agent:1.4"'
    await put(cluster, pod("web-a", ready=False, waiting=("ImagePullBackOff", backoff)))
    backing_off = await observe(supervisor, lambda o: "Back-off" in o.replicas[0].message)
    assert backing_off.failure is None

    await put(cluster, pod("web-a"))  # the next pull worked
    running = await observe(supervisor, lambda o: o.replicas[0].ready)
    assert running.failure is None
    [replica] = running.replicas
    assert (replica.state, replica.ready) == ("running", True)


async def test_an_invalid_image_name_is_image_not_found(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    message = 'Failed to apply default image tag "Bad//Name": invalid reference format'
    await put(cluster, pod("web-a", ready=False, waiting=("InvalidImageName", message)))
    with pytest.raises(ImageNotFoundError) as caught:
        await supervise(runtime, single_plan()).tick()
    assert "InvalidImageName" in str(caught.value)


async def test_the_schedulers_message_is_the_replicas_reason(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    unschedulable = pod("web-a", phase="Pending", ready=False)
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    unschedulable["status"] = {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": message}
        ],
    }  # fmt: skip
    await put(cluster, unschedulable)
    [replica] = (await supervise(runtime, single_plan()).tick()).replicas
    assert (replica.state, replica.message) == ("pending", message)


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


async def test_after_the_first_tick_everything_comes_from_the_watches(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    """One watch per kind for the process instead of lists per workload per tick: idle ticks
    ask the API server nothing (no pod, EndpointSlice or Deployment list), and a change wakes
    the supervisor."""
    await put(cluster, pod("web-a", ready=False))
    supervisor = supervise(runtime, single_plan())
    await supervisor.tick()
    await until_synced(runtime)  # each watch lists once, then streams
    listed = len(list(cluster["list"]))
    for _ in range(3):
        await supervisor.tick()
    assert len(list(cluster["list"])) == listed

    await put(cluster, pod("web-a", ready=True))
    await put(cluster, endpoint_slice(f"wapi-{WID}", [("web-a", "10.1.0.7", True)]))
    started = time.monotonic()
    await supervisor.wait(60)
    assert time.monotonic() - started < 30  # woken by the watch, not by the time limit
    ready = await observe(supervisor, lambda o: o.replicas[0].address == "10.1.0.7:8080")
    assert [e.type for e in ready.events] == ["replica_ready"]
    assert len(list(cluster["list"])) == listed
