"""The runtime's other calls against the emulator: halt, remove, ping, errors, logs, config."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kmock
import pytest

from runtimes.base import LogLine, Runtime
from runtimes.errors import RuntimeUnavailableError, StartFailedError
from runtimes.kubernetes import KubernetesRuntime, load_configuration
from runtimes.kubernetes.logs import THREAD_PREFIX
from runtimes.kubernetes.manifests import secret_name
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

    assert await runtime.remove(WID) == 4  # 2 Deployments, the Service, the Secret
    assert live(cluster, "Deployment") == live(cluster, "Service") == live(cluster, "Secret") == {}
    assert await runtime.remove(WID) == 0  # idempotent
    deletes = [r for r in cluster["delete"] if r.resource == kmock.resource("apps/v1/deployments")]
    assert {r.data["propagationPolicy"] for r in deletes} == {"Background"}


async def test_remove_can_keep_one_generation(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await deploy(runtime, generation=1)
    await deploy(runtime, generation=2)  # patches the same objects to generation 2

    assert await runtime.remove(WID, keep_generation=2) == 0
    assert len(live(cluster, "Deployment")) == 2
    assert await runtime.remove(WID, keep_generation=1) == 4


async def test_remove_leaves_other_workloads_alone(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    await deploy(runtime)
    assert await runtime.remove("another0000000000000000") == 0
    assert len(live(cluster, "Deployment")) == 2
    assert secret_name(WID) in live(cluster, "Secret")


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


async def test_forbidden_names_the_service_account(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    forbidden = kmock.KubernetesError(
        status=403, reason="Forbidden", message='deployments.apps is forbidden: User "x"'
    )
    cluster[f"post /apis/apps/v1/namespaces/{NAMESPACE}/deployments"] << forbidden
    with pytest.raises(RuntimeUnavailableError, match="service account") as caught:
        await runtime.supervisor(graph_plan(), SECRETS, []).tick()
    assert "deployments.apps is forbidden" in str(caught.value)


async def test_rejected_manifest_is_start_failed(
    runtime: KubernetesRuntime, cluster: kmock.KubernetesEmulator
) -> None:
    invalid = kmock.KubernetesError(status=422, reason="Invalid", message="spec.template: bad")
    cluster[f"post /apis/apps/v1/namespaces/{NAMESPACE}/deployments"] << invalid
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


def test_the_runtime_satisfies_the_protocol(runtime: KubernetesRuntime) -> None:
    typed: Runtime = runtime  # mypy checks the structure; the asserts check the values
    assert typed.name == "kubernetes"
    assert isinstance(runtime.supervisor(graph_plan(), SECRETS, []), KubernetesSupervisor)
