"""The runtime's other calls against the emulator: halt, remove, ping, errors, logs, config."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kmock
import pytest

from runtimes.base import LogLine, Runtime
from runtimes.errors import (
    LogsNotReadyError,
    PolicyRejectedError,
    RuntimeUnavailableError,
    StartFailedError,
    WorkloadFailedError,
)
from runtimes.kubernetes import KubernetesRuntime, client, load_configuration
from runtimes.kubernetes.logs import THREAD_PREFIX
from runtimes.kubernetes.supervisor import KubernetesSupervisor
from tests.runtimes.kubernetes.cluster import NAMESPACE, WID, graph_plan, live, pod, put
from tests.runtimes.kubernetes.conftest import configuration_for
from tests.support.ports import free_port

SECRETS = {"5ec0000000000000000000aa": "value"}
LOG_PATH = f"/api/v1/namespaces/{NAMESPACE}/pods/{{}}/log"


async def deploy(runtime: KubernetesRuntime, generation: int = 1) -> None:
    await runtime.supervisor(graph_plan(generation), SECRETS, []).tick()


async def test_halt_scales_to_zero_and_keeps_the_objects(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await deploy(runtime)
    await runtime.halt(WID)

    deployments = live(cluster, "Deployment")
    assert len(deployments) == 2
    assert {d["spec"]["replicas"] for d in deployments.values()} == {0}
    assert live(cluster, "Service") and live(cluster, "Secret")

    # Starting again with the same plan must scale back up, though nothing else changed.
    await runtime.supervisor(graph_plan(), SECRETS, []).tick()
    assert sorted(d["spec"]["replicas"] for d in live(cluster, "Deployment").values()) == [1, 2]


async def test_remove_deletes_everything_and_counts(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await deploy(runtime)
    await put(cluster, pod("web-a"))  # pods belong to the Deployments' garbage collection

    # 2 Deployments, 2 Services, the Secret, the anchor ConfigMap
    assert await runtime.remove(WID) == 6
    assert live(cluster, "Deployment") == live(cluster, "Service") == live(cluster, "Secret") == {}
    assert live(cluster, "ConfigMap") == {}
    assert await runtime.remove(WID) == 0  # idempotent
    deletes = [r for r in cluster["delete"] if r.resource == kmock.resource("apps/v1/deployments")]
    assert {r.data["propagationPolicy"] for r in deletes} == {"Background"}


async def test_remove_can_keep_one_generation(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await deploy(runtime, generation=1)
    await deploy(runtime, generation=2)  # applies the same objects as generation 2

    assert await runtime.remove(WID, keep_generation=2) == 0
    assert len(live(cluster, "Deployment")) == 2
    assert await runtime.remove(WID, keep_generation=1) == 5
    assert list(live(cluster, "ConfigMap")) == [f"wapi-{WID}"]  # the workload's, not a generation's


async def test_remove_leaves_other_workloads_alone(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await deploy(runtime)
    assert await runtime.remove("another0000000000000000") == 0
    assert len(live(cluster, "Deployment")) == 2
    assert len(live(cluster, "Secret")) == 1


async def test_ping(runtime: KubernetesRuntime) -> None:
    await runtime.ping()


def closed_port() -> int:
    return free_port()


@pytest.fixture
async def unreachable() -> AsyncIterator[KubernetesRuntime]:
    runtime = KubernetesRuntime(
        NAMESPACE, configuration_for(f"http://127.0.0.1:{closed_port()}"), request_timeout=2
    )
    yield runtime
    await runtime.close()


async def test_unreachable_api_is_runtime_unavailable(unreachable: KubernetesRuntime) -> None:
    with pytest.raises(RuntimeUnavailableError, match="did not answer"):
        await unreachable.ping()
    with pytest.raises(RuntimeUnavailableError):
        await unreachable.supervisor(graph_plan(), SECRETS, []).tick()
    with pytest.raises(RuntimeUnavailableError):
        await unreachable.halt(WID)
    with pytest.raises(RuntimeUnavailableError):
        await unreachable.remove(WID)


async def test_a_hanging_api_times_out(cluster: kmock.KubernetesEmulator) -> None:
    release = asyncio.Event()
    cluster[f"get /apis/apps/v1/namespaces/{NAMESPACE}/deployments"] << release.wait
    runtime = KubernetesRuntime(NAMESPACE, configuration_for(str(cluster.url)), request_timeout=0.5)
    try:
        with pytest.raises(RuntimeUnavailableError):
            # The stock client would wait forever (the API answers only after `release`);
            # wait_for only keeps a broken test short, and raises TimeoutError instead.
            await asyncio.wait_for(runtime.ping(), 60)
    finally:
        release.set()
        await runtime.close()


DEPLOYMENT_WRITE = f"patch /apis/apps/v1/namespaces/{NAMESPACE}/deployments/wapi-{WID}-web"


async def test_an_rbac_403_names_the_service_account_and_is_retryable(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    message = (
        'deployments.apps "wapi-x-web" is forbidden: User "system:serviceaccount:workload-api:'
        'wapi-worker" cannot patch resource "deployments" in API group "apps" in the namespace '
        f'"{NAMESPACE}"'
    )
    cluster[DEPLOYMENT_WRITE] << kmock.KubernetesError(403, "Forbidden", message)
    with pytest.raises(RuntimeUnavailableError, match="service account") as caught:
        await runtime.supervisor(graph_plan(), SECRETS, []).tick()
    assert "cannot patch resource" in str(caught.value)


@pytest.mark.parametrize(
    ("message", "policy"),
    [
        (
            'admission webhook "validate.kyverno.svc-fail" denied the request: policy '
            "require-labels: validation error: label 'team' is required",
            'admission webhook "validate.kyverno.svc-fail"',
        ),
        (
            'deployments.apps "wapi-x-web" is forbidden: exceeded quota: gpu-quota, requested: '
            "count/deployments.apps=1, used: count/deployments.apps=10, limited: "
            "count/deployments.apps=10",
            'ResourceQuota "gpu-quota"',
        ),
        (
            "deployments.apps \"wapi-x-web\" is forbidden: ValidatingAdmissionPolicy 'no-gpu' "
            "with binding 'no-gpu-binding' denied request: GPUs are not allowed here",
            "ValidatingAdmissionPolicy 'no-gpu'",
        ),
    ],
    ids=["webhook", "quota", "admission-policy"],
)
async def test_a_policy_403_is_a_clear_non_retryable_failure_naming_the_policy(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator, message: str, policy: str
) -> None:
    cluster[DEPLOYMENT_WRITE] << kmock.KubernetesError(403, "Forbidden", message)
    with pytest.raises(PolicyRejectedError) as caught:
        await runtime.supervisor(graph_plan(), SECRETS, []).tick()
    assert isinstance(caught.value, WorkloadFailedError)  # the activity does not retry it
    assert str(caught.value).startswith(f"{policy} refused applying Deployment")
    assert message in str(caught.value)


async def test_429_waits_as_long_as_retry_after_says_then_succeeds(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    status = {"kind": "Status", "status": "Failure", "reason": "TooManyRequests", "code": 429,
              "message": "Too many requests, please try again later."}  # fmt: skip
    path = f"get /apis/apps/v1/namespaces/{NAMESPACE}/deployments"
    first_only = cluster[path][lambda request: request.id == 0]
    first_only << 429 << kmock.headers({"Retry-After": "1"}) << status
    started = time.monotonic()
    await runtime.ping()
    assert time.monotonic() - started >= 1  # waited as told, not retried at once
    assert len(list(cluster[path])) == 2


async def test_429_for_too_long_is_unavailable(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "THROTTLE_MAX_WAIT_SECONDS", 0.0)
    path = f"get /apis/apps/v1/namespaces/{NAMESPACE}/deployments"
    cluster[path] << kmock.KubernetesError(429, "TooManyRequests", "slow down")
    with pytest.raises(RuntimeUnavailableError, match="throttling"):
        await runtime.ping()
    assert len(list(cluster[path])) == client.THROTTLE_ATTEMPTS


async def test_rejected_manifest_is_start_failed(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    invalid = kmock.KubernetesError(status=422, reason="Invalid", message="spec.template: bad")
    cluster[DEPLOYMENT_WRITE] << invalid
    with pytest.raises(StartFailedError, match=r"spec\.template: bad"):
        await runtime.supervisor(graph_plan(), SECRETS, []).tick()


async def test_logs_merge_pods_oldest_first_with_tail(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await put(cluster, pod("web-a"))
    await put(cluster, pod("web-b", created="2026-01-01T00:00:05Z"))
    cluster["get " + LOG_PATH.format("web-a")] << (
        b"2026-01-01T10:00:01.000000001Z first\n2026-01-01T10:00:03.5Z third\n"
    )
    cluster["get " + LOG_PATH.format("web-b")] << b"2026-01-01T10:00:02Z second\n"

    lines = [line async for line in runtime.logs(WID, tail=2)]

    assert [(x.replica, x.message) for x in lines] == [("web-b", "second"), ("web-a", "third")]
    assert lines[0].timestamp == datetime(2026, 1, 1, 10, 0, 2, tzinfo=UTC)
    assert lines[1].container == "main" and lines[1].stream == "stdout"
    request = next(iter(cluster["get " + LOG_PATH.format("web-a")]))
    assert request.params["tailLines"] == "2" and request.params["timestamps"] == "true"
    assert request.params["container"] == "main"
    assert [line async for line in runtime.logs(WID, tail=0)] == []
    assert len([line async for line in runtime.logs(WID, tail=50)]) == 3


async def test_logs_of_a_container_waiting_to_start_are_an_empty_page_with_the_reason(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await put(cluster, pod("web-a", ready=False, waiting=("ContainerCreating", "")))
    waiting = 'container "main" in pod "web-a" is waiting to start: ContainerCreating'
    cluster["get " + LOG_PATH.format("web-a")] << kmock.KubernetesError(400, "BadRequest", waiting)

    with pytest.raises(LogsNotReadyError, match="waiting to start: ContainerCreating"):
        [line async for line in runtime.logs(WID)]

    await put(cluster, pod("web-b", created="2026-01-01T00:00:05Z"))  # one has started: its lines
    cluster["get " + LOG_PATH.format("web-b")] << b"2026-01-01T10:00:02Z hello\n"
    assert [x.message async for x in runtime.logs(WID)] == ["hello"]


async def test_stop_keeps_the_last_logs_readable(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await deploy(runtime)
    await put(cluster, pod("web-a"))
    await put(cluster, pod("model-a", group="model", created="2026-01-01T00:00:03Z"))
    cluster["get " + LOG_PATH.format("web-a")] << b"2026-01-01T10:00:01Z one\n"
    cluster["get " + LOG_PATH.format("model-a")] << b"2026-01-01T10:00:02Z two\n"

    await runtime.halt(WID)
    for name in ("web-a", "model-a"):  # what the ReplicaSets do after the scale to zero
        del cluster.objects["v1/pods", NAMESPACE, name]

    lines = [line async for line in runtime.logs(WID)]
    assert [(x.replica, x.container, x.message) for x in lines] == [
        ("web-a", "main", "one"),
        ("model-a", "main", "two"),
    ]
    assert [x.message async for x in runtime.logs(WID, replica="model-a", tail=5)] == ["two"]
    request = next(iter(cluster["get " + LOG_PATH.format("web-a")]))
    assert request.params["limitBytes"] and request.params["tailLines"] == "1000"
    kept = live(cluster, "ConfigMap")[f"wapi-{WID}-last-logs"]
    assert kept["metadata"]["ownerReferences"][0]["name"] == f"wapi-{WID}"  # removed with it


async def test_logs_of_one_replica_since_a_time(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await put(cluster, pod("web-a"))
    await put(cluster, pod("web-b"))
    now = datetime.now(UTC)
    old, new = (now - timedelta(seconds=90)).isoformat(), now.isoformat()
    cluster["get " + LOG_PATH.format("web-a")] << f"{old} old\n{new} new\n".encode()

    since = now - timedelta(seconds=60)
    lines = [line async for line in runtime.logs(WID, replica="web-a", since=since)]

    assert [x.message for x in lines] == ["new"]
    assert not list(cluster["get " + LOG_PATH.format("web-b")])
    request = next(iter(cluster["get " + LOG_PATH.format("web-a")]))
    assert 60 <= int(request.params["sinceSeconds"]) <= 62


async def test_follow_streams_until_the_caller_stops(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await put(cluster, pod("web-a"))
    more = asyncio.Event()

    async def stream() -> AsyncIterator[bytes]:
        yield b"2026-01-01T10:00:01Z one\n"
        await more.wait()  # a live container, silent for a while
        yield b"2026-01-01T10:00:02Z two\n"
        await asyncio.Event().wait()  # and then silent forever

    cluster["get " + LOG_PATH.format("web-a")] << stream
    received: list[LogLine] = []
    logs = runtime.logs(WID, follow=True)
    async for line in logs:
        received.append(line)
        if len(received) == 1:
            more.set()
        if len(received) == 2:
            break
    await logs.aclose()  # type: ignore[attr-defined]

    assert [x.message for x in received] == ["one", "two"]
    # Closing shuts the stream's socket down, so its reader thread ends instead of lingering.
    for _ in range(100):
        if not [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the log reader thread is still running")
    request = next(iter(cluster["get " + LOG_PATH.format("web-a")]))
    assert request.params["follow"] == "true"


async def test_kubeconfig_is_loaded(cluster: kmock.KubernetesEmulator, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        f"""
apiVersion: v1
kind: Config
clusters: [{{name: emu, cluster: {{server: "{str(cluster.url).rstrip("/")}"}}}}]
users: [{{name: wapi, user: {{token: test-token}}}}]
contexts: [{{name: emu, context: {{cluster: emu, user: wapi, namespace: {NAMESPACE}}}}}]
current-context: emu
"""
    )
    runtime = KubernetesRuntime(NAMESPACE, load_configuration(str(kubeconfig)))
    try:
        await runtime.ping()
    finally:
        await runtime.close()
    [request] = list(cluster["get"])
    assert request.headers["Authorization"] == "Bearer test-token"


def test_missing_kubeconfig_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailableError, match="credentials"):
        load_configuration(str(tmp_path / "nope"))


def test_the_installed_client_is_the_one_the_runtime_is_written_for() -> None:
    """`TimeoutApiClient.call_api` overrides the 37.x signature; pyproject pins that range."""
    import inspect

    from kubernetes import __version__ as installed
    from kubernetes import client as k8s

    assert installed.split(".")[0] == "37"
    ours = inspect.signature(client.TimeoutApiClient.call_api).parameters
    theirs = inspect.signature(k8s.ApiClient.call_api).parameters
    assert list(ours) == list(theirs)


def test_the_runtime_satisfies_the_protocol(runtime: KubernetesRuntime) -> None:
    typed: Runtime = runtime  # mypy checks the structure; the asserts check the values
    assert typed.name == "kubernetes"
    assert isinstance(runtime.supervisor(graph_plan(), SECRETS, []), KubernetesSupervisor)
