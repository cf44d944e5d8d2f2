"""The local runtime when things go wrong: crashes, kills, probes failing, bad images/commands."""

from __future__ import annotations

import asyncio
import re
import time

import aiodocker
import pytest

from models.plan import SecretEnv
from runtimes.base import Observation
from runtimes.errors import (
    ImageNotFoundError,
    RuntimeUnavailableError,
    StartFailedError,
)
from runtimes.local.runtime import LocalRuntime
from tests.runtimes.local.conftest import container, exec_in, plan, probe, ready, tick_until


def failed(observation: Observation) -> bool:
    return observation.failure is not None


async def test_crash_loop_restarts_with_backoff_then_fails_naming_exit_code_and_logs(
    runtime: LocalRuntime, workload_id: str, test_image: str
) -> None:
    supervisor = runtime.supervisor(plan(workload_id, container(test_image, "crash")), {}, [])
    try:
        watch = await tick_until(supervisor, failed, within=90)  # four starts on a busy engine
        after = await supervisor.tick()  # a failure sticks, and nothing more happens
    finally:
        await supervisor.close()

    assert watch.last is not None and watch.last.failure is not None
    assert "code 3" in watch.last.failure
    assert "crashing on purpose (exit 3)" in watch.last.failure
    assert after.failure == watch.last.failure and after.events == []
    replica = watch.last.replicas[0]
    assert (replica.restarts, replica.state, replica.ready) == (3, "crashed", False)
    assert watch.types().count("replica_restarted") == 3
    assert watch.types().count("container_exited") == 4
    assert watch.types()[-1] == "replica_crash_loop"
    exits = [event.details["exit_code"] for _, event in watch.of("container_exited")]
    assert exits == [3, 3, 3, 3]
    # Exponential backoff (0.2 s, 0.4 s, 0.8 s): each gap between exit and restart grows.
    exited = [at for at, _ in watch.of("container_exited")]
    restarted = [at for at, _ in watch.of("replica_restarted")]
    gaps = [start - stop for stop, start in zip(exited, restarted, strict=False)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8, gaps


async def test_container_killed_from_outside_is_restarted(
    runtime: LocalRuntime, workload_id: str, test_image: str, docker: aiodocker.Docker
) -> None:
    supervisor = runtime.supervisor(plan(workload_id, container(test_image, "serve")), {}, [])
    try:
        watch = await tick_until(supervisor, ready())
        await docker.containers.container(f"wapi-{workload_id}-default-0-g1-main").kill()
        await tick_until(supervisor, lambda o: o.replicas[0].restarts == 1, watch=watch)
        await tick_until(supervisor, ready(), watch=watch)
    finally:
        await supervisor.close()
    [(_, exited)] = watch.of("container_exited")
    assert exited.details["exit_code"] == 137  # SIGKILL
    assert "exited with code 137" in exited.message
    assert watch.types().count("replica_restarted") == 1
    assert watch.last is not None and watch.last.failure is None


async def test_never_ready_stays_not_ready_with_the_probe_message(
    runtime: LocalRuntime, workload_id: str, test_image: str
) -> None:
    main = container(test_image, "never-ready", readiness_probe=probe(path="/ready"))
    supervisor = runtime.supervisor(plan(workload_id, main), {}, [])
    try:
        watch = await tick_until(
            supervisor,
            lambda o: (
                len(o.replicas[0].probes) > 0
                and not o.replicas[0].probes["readiness"].ok
                and o.replicas[0].state == "running"
            ),
        )
        # The verdict flips after failureThreshold (3) counted periods; failures within the
        # first period are retried sooner and not counted. Until then: still not ready, no
        # restarts, no failure.
        await tick_until(supervisor, lambda o: bool(watch.of("probe_failed")), watch=watch)
    finally:
        await supervisor.close()
    assert watch.last is not None and watch.last.failure is None
    replica = watch.last.replicas[0]
    assert not replica.ready and replica.restarts == 0
    assert "returned 404" in replica.probes["readiness"].message
    assert "ready" not in [t for t in watch.types() if t == "replica_ready"]
    [(_, event)] = watch.of("probe_failed")
    assert event.details["probe"] == "readiness"


async def test_failing_liveness_probe_restarts_then_fails_naming_the_probe(
    runtime: LocalRuntime, workload_id: str, test_image: str
) -> None:
    main = container(
        test_image, "never-ready", liveness_probe=probe(path="/ready", failureThreshold=1)
    )
    supervisor = runtime.supervisor(plan(workload_id, main), {}, [])
    try:
        watch = await tick_until(supervisor, failed, within=30)
    finally:
        await supervisor.close()
    assert watch.last is not None and watch.last.failure is not None
    assert "liveness probe of container 'main'" in watch.last.failure
    # 404 once the server listens; on a loaded machine the first probe may come before it does.
    assert "HTTP GET /ready on port 8080" in watch.last.failure
    assert "returned 404" in watch.last.failure or "Connect call failed" in watch.last.failure
    assert watch.types().count("replica_restarted") == 3
    assert "container_exited" not in watch.types()  # stopped by us, not crashed


async def test_slow_start_is_ready_only_after_its_startup_probe_passes(
    runtime: LocalRuntime, workload_id: str, test_image: str
) -> None:
    main = container(
        test_image,
        "slow-start",
        "2",
        startup_probe=probe(path="/healthz", failureThreshold=10),
        readiness_probe=probe(path="/ready"),
    )
    supervisor = runtime.supervisor(plan(workload_id, main), {}, [])
    began = time.monotonic()
    try:
        watch = await tick_until(supervisor, lambda o: "startup" in o.replicas[0].probes)
        first = watch.last
        watch = await tick_until(supervisor, ready(), watch=watch)
    finally:
        await supervisor.close()
    assert time.monotonic() - began >= 2
    # While starting up, readiness was not probed and the replica said so.
    assert first is not None
    assert first.replicas[0].state == "starting"
    assert "readiness" not in first.replicas[0].probes
    assert not first.replicas[0].probes["startup"].ok
    assert watch.last is not None and watch.last.replicas[0].restarts == 0
    assert watch.last.replicas[0].probes["startup"].ok


async def test_exec_and_tcp_probes(
    runtime: LocalRuntime, workload_id: str, test_image: str, docker: aiodocker.Docker
) -> None:
    main = container(
        test_image,
        "serve",
        readiness_probe=probe(exec={"command": ["cat", "/www/ready"]}, failureThreshold=1),
        liveness_probe=probe(tcpSocket={"port": 8080}),
    )
    supervisor = runtime.supervisor(plan(workload_id, main), {}, [])

    def ready_and_live(observation: Observation) -> bool:
        # The image has /www/ready before the server listens, so the first TCP probe may come
        # too early; one failure is below the liveness threshold and must not restart anything.
        probes = observation.replicas[0].probes
        return ready()(observation) and "liveness" in probes and probes["liveness"].ok

    try:
        watch = await tick_until(supervisor, ready_and_live)
        replica = watch.last.replicas[0] if watch.last else None
        assert replica is not None and replica.restarts == 0
        assert "exited with code 0: ok" in replica.probes["readiness"].message
        # Readiness follows the exec probe: remove the file, then put it back.
        name = f"wapi-{workload_id}-default-0-g1-main"
        await exec_in(docker, name, "rm", "/www/ready")
        await tick_until(supervisor, lambda o: not o.replicas[0].ready, watch=watch)
        await exec_in(docker, name, "sh", "-c", "echo ok > /www/ready")
        await tick_until(supervisor, ready(), watch=watch)
    finally:
        await supervisor.close()
    assert watch.types().count("replica_not_ready") == 1
    assert watch.types().count("probe_recovered") == 1


async def test_tcp_probe_fails_on_a_port_nobody_listens_on(
    runtime: LocalRuntime, workload_id: str, test_image: str
) -> None:
    main = container(test_image, "serve", readiness_probe=probe(tcpSocket={"port": 9999}))
    supervisor = runtime.supervisor(plan(workload_id, main), {}, [])
    try:
        watch = await tick_until(supervisor, lambda o: "readiness" in o.replicas[0].probes)
    finally:
        await supervisor.close()
    assert watch.last is not None
    result = watch.last.replicas[0].probes["readiness"]
    assert not result.ok and "port 9999" in result.message
    assert not watch.last.replicas[0].ready


async def test_missing_image_fails_fast_naming_the_image(
    runtime: LocalRuntime, workload_id: str
) -> None:
    # `.invalid` never resolves: the pull fails at once (a refused connection is retried).
    image = "registry.invalid/wapi/no-such-image:1"
    supervisor = runtime.supervisor(plan(workload_id, container(image)), {}, [])
    with pytest.raises(ImageNotFoundError, match=re.escape(image)) as caught:
        # The first tick fails (no retries); wait_for only keeps a broken test short.
        await asyncio.wait_for(supervisor.tick(), 120)
    await supervisor.close()
    assert "pulling it failed" in str(caught.value)


async def test_bad_entrypoint_fails_fast_with_the_engine_reason(
    runtime: LocalRuntime, workload_id: str, test_image: str
) -> None:
    main = container(test_image, entrypoint=["/no/such/binary"])
    supervisor = runtime.supervisor(plan(workload_id, main), {}, [])
    with pytest.raises(StartFailedError, match="/no/such/binary"):
        await supervisor.tick()
    await supervisor.close()


async def test_missing_secret_names_the_variable(
    runtime: LocalRuntime, workload_id: str, test_image: str
) -> None:
    main = container(test_image, secret_env=[SecretEnv(name="API_TOKEN", secret_id="gone")])
    supervisor = runtime.supervisor(plan(workload_id, main), {"other": "value-1"}, [])
    with pytest.raises(StartFailedError, match="API_TOKEN") as caught:
        await supervisor.tick()
    await supervisor.close()
    assert "value-1" not in str(caught.value)


async def test_unreachable_engine_is_unavailable(workload_id: str) -> None:
    runtime = LocalRuntime("unix:///nonexistent/wapi/docker.sock")
    try:
        with pytest.raises(RuntimeUnavailableError):
            await runtime.ping()
        supervisor = runtime.supervisor(plan(workload_id, container("x")), {}, [])
        with pytest.raises(RuntimeUnavailableError):
            await supervisor.tick()
        with pytest.raises(RuntimeUnavailableError):
            await runtime.halt(workload_id)
        with pytest.raises(RuntimeUnavailableError):
            [line async for line in runtime.logs(workload_id)]
    finally:
        await runtime.close()


async def test_ping_answers_on_a_live_engine(runtime: LocalRuntime) -> None:
    await runtime.ping()


async def test_a_3_mb_line_is_cut_before_it_reaches_the_failure(
    runtime: LocalRuntime, workload_id: str, test_image: str
) -> None:
    """A container that prints one 3 MB line and exits: it crash-loops as any other, and its
    last log lines travel in the failure (a status reason, events, a Temporal payload) cut
    short, never whole."""
    shout = "head -c 3000000 /dev/zero | tr '\\0' x; echo; exit 1"
    supervisor = runtime.supervisor(
        plan(workload_id, container(test_image, "sh", "-c", shout)), {}, []
    )
    try:
        watch = await tick_until(supervisor, failed, within=60)
    finally:
        await supervisor.close()
    assert watch.last is not None and watch.last.failure is not None
    failure = watch.last.failure
    # (Podman stores such a line in 8 KiB pieces, and its `tail` may not reach back past
    # the last one: the cut itself is tested on a stream in test_pieces.py.)
    assert "exited with code 1" in failure and len(failure) < 1000, failure[:2000]
    assert all(len(event.message) < 1000 for _, event in watch.events)
