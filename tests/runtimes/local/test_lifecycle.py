"""The local runtime on real containers: serving, adoption, scaling, sidecars, env, halt, remove."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiodocker
import httpx

from models.plan import SecretEnv
from runtimes.base import (
    LABEL_CONTAINER,
    LABEL_GENERATION,
    LABEL_GROUP,
    LABEL_MANAGED,
    LABEL_REPLICA,
    LABEL_WORKLOAD,
    Observation,
    ReplicaStatus,
)
from runtimes.local.containers import ULIMITS
from runtimes.local.engine import Engine
from runtimes.local.naming import ContainerKey
from runtimes.local.runtime import LocalRuntime
from tests.runtimes.local.conftest import (
    container,
    containers_of,
    exec_in,
    plan,
    probe,
    ready,
    tick_until,
)


async def test_serving_replica_becomes_ready_and_answers_on_its_address(
    runtime: LocalRuntime, workload_id: str, test_image: str, docker: aiodocker.Docker
) -> None:
    main = container(
        test_image,
        "serve",
        readiness_probe=probe(path="/ready"),
        cpu=0.5,
        memory_bytes=64 * 2**20,
    )
    supervisor = runtime.supervisor(plan(workload_id, main), {}, [])
    try:
        watch = await tick_until(supervisor, ready())
    finally:
        await supervisor.close()

    assert watch.last is not None
    replica = watch.last.replicas[0]
    assert replica.name == f"wapi-{workload_id}-default-0-g1"
    assert replica.state == "running" and replica.restarts == 0
    assert replica.probes["readiness"].ok
    assert replica.address is not None and replica.address.startswith("127.0.0.1:")
    async with httpx.AsyncClient(base_url=f"http://{replica.address}") as client:
        assert (await client.get("/healthz")).status_code == 200
        echo = (await client.post("/cgi-bin/echo/x?y=1", content=b"hi")).json()
    assert (echo["method"], echo["pathInfo"], echo["query"], echo["body"]) == (
        "POST",
        "/x",
        "y=1",
        "hi",
    )
    assert watch.types().count("replica_created") == 1
    assert watch.types().count("replica_ready") == 1

    [row] = await containers_of(docker, workload_id)
    assert row["Names"] == [f"/wapi-{workload_id}-default-0-g1-main"]
    labels = row["Labels"]
    assert {k: labels[k] for k in (LABEL_MANAGED, LABEL_WORKLOAD, LABEL_GROUP)} == {
        LABEL_MANAGED: "true",
        LABEL_WORKLOAD: workload_id,
        LABEL_GROUP: "default",
    }
    assert (labels[LABEL_REPLICA], labels[LABEL_GENERATION], labels[LABEL_CONTAINER]) == (
        "0",
        "1",
        "main",
    )
    info = await docker.containers.container(row["Id"]).show()
    [binding] = info["NetworkSettings"]["Ports"]["8080/tcp"]
    assert binding["HostIp"] == "127.0.0.1"  # published on loopback only
    assert replica.address == f"127.0.0.1:{binding['HostPort']}"
    assert 20000 <= int(binding["HostPort"]) <= 32767  # the publish range, not the engine's pick
    assert (info["HostConfig"]["NanoCpus"], info["HostConfig"]["Memory"]) == (5 * 10**8, 2**26)
    limits = await exec_in(docker, row["Id"], "sh", "-c", "ulimit -n; ulimit -u")
    assert limits.split() == ["1024", "4096"]


async def test_a_second_supervisor_adopts_the_containers_of_the_first(
    runtime: LocalRuntime, workload_id: str, test_image: str, docker: aiodocker.Docker
) -> None:
    the_plan = plan(workload_id, container(test_image, "serve"), replicas=2)
    first = runtime.supervisor(the_plan, {}, [])
    await tick_until(first, ready(2))
    before = sorted(row["Id"] for row in await containers_of(docker, workload_id))
    await first.close()

    # A restarted worker: same plan, a fresh supervisor, restart counts from the catalog.
    previous = [
        ReplicaStatus(group="default", index=0, generation=1, name="x", state="running", restarts=4)
    ]
    second = runtime.supervisor(the_plan, {}, previous)
    try:
        watch = await tick_until(second, ready(2))
    finally:
        await second.close()

    after = sorted(row["Id"] for row in await containers_of(docker, workload_id))
    assert after == before and len(after) == 2
    assert "replica_created" not in watch.types()
    assert watch.last is not None
    assert [r.restarts for r in watch.last.replicas] == [4, 0]


async def test_an_adopted_ready_replica_stays_ready_with_its_last_probe_results(
    runtime: LocalRuntime, workload_id: str, test_image: str
) -> None:
    """A rescale or a worker restart starts a new supervisor: a replica that was ready stays
    in traffic, showing its last readiness result, until its own probes say otherwise."""
    the_plan = plan(
        workload_id, container(test_image, "serve", readiness_probe=probe(path="/ready"))
    )
    first = runtime.supervisor(the_plan, {}, [])
    try:
        watch = await tick_until(first, ready())
    finally:
        await first.close()
    assert watch.last is not None
    [was] = watch.last.replicas
    assert was.ready and was.probes["readiness"].ok

    second = runtime.supervisor(the_plan, {}, [was])
    try:
        adopted = await second.tick()
    finally:
        await second.close()
    [now] = adopted.replicas
    assert now.ready and now.probes["readiness"].ok, now


async def test_scaling_and_a_new_generation_remove_what_the_plan_no_longer_has(
    runtime: LocalRuntime, workload_id: str, test_image: str, docker: aiodocker.Docker
) -> None:
    main = container(test_image, "serve")
    up = runtime.supervisor(plan(workload_id, main, replicas=3), {}, [])
    await tick_until(up, ready(3))
    await up.close()

    down = runtime.supervisor(plan(workload_id, main, replicas=1), {}, [])
    watch = await tick_until(down, ready(1))
    await down.close()
    names = [row["Names"][0] for row in await containers_of(docker, workload_id)]
    assert names == [f"/wapi-{workload_id}-default-0-g1-main"]
    removed = sorted(str(event.details["replica"]) for _, event in watch.of("replica_removed"))
    assert removed == [f"wapi-{workload_id}-default-{i}-g1" for i in (1, 2)]

    next_generation = runtime.supervisor(plan(workload_id, main, generation=2), {}, [])
    try:
        await tick_until(next_generation, ready(1))
    finally:
        await next_generation.close()
    names = [row["Names"][0] for row in await containers_of(docker, workload_id)]
    assert names == [f"/wapi-{workload_id}-default-0-g2-main"]


async def test_sidecar_shares_the_primary_network_also_after_the_primary_restarts(
    runtime: LocalRuntime, workload_id: str, test_image: str, docker: aiodocker.Docker
) -> None:
    # The sidecar is ready only if it reaches the primary's server on localhost.
    reach_primary = probe(
        exec={"command": ["wget", "-qO-", "127.0.0.1:8080/healthz"]}, failureThreshold=1
    )
    sidecar = container(
        test_image,
        "sleep",
        "3600",
        name="helper",
        primary=False,
        port=None,
        readiness_probe=reach_primary,
    )
    supervisor = runtime.supervisor(
        plan(workload_id, container(test_image, "serve"), sidecar), {}, []
    )
    try:
        watch = await tick_until(supervisor, ready())
        primary = f"wapi-{workload_id}-default-0-g1-main"
        await docker.containers.container(primary).kill()
        await tick_until(supervisor, lambda o: o.replicas[0].restarts == 1, watch=watch)
        restarted = datetime.now(UTC)

        def reached_well_after_restart(observation: Observation) -> bool:
            # A probe more than a period after the restart passed (failureThreshold 1: any
            # failure makes the replica not ready): the sidecar reaches the new primary.
            replica = observation.replicas[0]
            readiness = replica.probes.get("readiness")
            return (
                replica.ready
                and readiness is not None
                and (readiness.checked_at - restarted).total_seconds() > 1
            )

        # However long a recreate and an exec take on a busy machine.
        await tick_until(supervisor, reached_well_after_restart, within=60, watch=watch)
    finally:
        await supervisor.close()
    info = await docker.containers.container(f"wapi-{workload_id}-default-0-g1-helper").show()
    assert info["HostConfig"]["NetworkMode"].startswith("container:")


async def test_environment_includes_plan_variables_and_resolved_secrets(
    runtime: LocalRuntime, workload_id: str, test_image: str
) -> None:
    main = container(
        test_image,
        "env",
        env={"WORKLOAD_ID": workload_id, "GREETING": "hello world"},
        secret_env=[SecretEnv(name="API_TOKEN", secret_id="sec-1")],
    )
    supervisor = runtime.supervisor(plan(workload_id, main), {"sec-1": "s3cr3t-value"}, [])
    try:
        watch = await tick_until(supervisor, ready())
    finally:
        await supervisor.close()
    printed = {line.message async for line in runtime.logs(workload_id)}
    assert {f"WORKLOAD_ID={workload_id}", "GREETING=hello world", "API_TOKEN=s3cr3t-value"} <= (
        printed
    )
    # The secret's value appears nowhere in what the runtime reports.
    assert watch.last is not None
    reported = watch.last.model_dump_json() + "".join(e.model_dump_json() for _, e in watch.events)
    assert "s3cr3t-value" not in reported


async def test_halt_keeps_containers_and_remove_removes_them(
    runtime: LocalRuntime, workload_id: str, test_image: str, docker: aiodocker.Docker
) -> None:
    supervisor = runtime.supervisor(plan(workload_id, container(test_image, "serve")), {}, [])
    await tick_until(supervisor, ready())
    await supervisor.close()

    await runtime.halt(workload_id)
    await runtime.halt(workload_id)  # idempotent
    [row] = await containers_of(docker, workload_id)
    assert row["State"] == "exited"
    lines = [line.message async for line in runtime.logs(workload_id)]
    assert "wapi-demo: serving on port 8080" in lines

    assert await runtime.remove(workload_id) == 1
    assert await runtime.remove(workload_id) == 0
    assert await containers_of(docker, workload_id) == []


async def test_remove_can_keep_one_generation(
    runtime: LocalRuntime, workload_id: str, test_image: str, docker: aiodocker.Docker
) -> None:
    main = container(test_image, "serve")
    supervisor = runtime.supervisor(plan(workload_id, main), {}, [])
    await supervisor.tick()
    await supervisor.close()
    # A container of generation 2 made by hand: a generation-2 supervisor would remove gen 1.
    key = ContainerKey(workload_id, 2, "default", 0, "main")
    config: dict[str, Any] = {
        "Image": test_image,
        "Labels": key.labels(),
        "HostConfig": {"Ulimits": ULIMITS},
    }
    await docker.containers.create(config, name=key.name)

    assert await runtime.remove(workload_id, keep_generation=2) == 1
    [row] = await containers_of(docker, workload_id)
    assert row["Labels"][LABEL_GENERATION] == "2"
    assert await runtime.remove(workload_id) == 1


async def test_concurrent_supervisors_of_one_plan_create_one_set_of_containers(
    runtime: LocalRuntime, workload_id: str, test_image: str, docker: aiodocker.Docker
) -> None:
    # Two workers racing on the same plan (a retried activity whose first attempt still
    # runs): name conflicts are resolved by adopting the container the other one created.
    the_plan = plan(workload_id, container(test_image, "serve"), replicas=2)
    first, second = (runtime.supervisor(the_plan, {}, []) for _ in range(2))
    try:
        await asyncio.gather(first.tick(), second.tick())
        await asyncio.gather(tick_until(first, ready(2)), tick_until(second, ready(2)))
    finally:
        await first.close()
        await second.close()
    names = sorted(row["Names"][0] for row in await containers_of(docker, workload_id))
    assert names == [f"/wapi-{workload_id}-default-{i}-g1-main" for i in (0, 1)]


async def test_engine_create_adopts_a_container_of_the_same_name(
    docker_url: str, workload_id: str, test_image: str, docker: aiodocker.Docker
) -> None:
    engine = Engine(docker_url)
    key = ContainerKey(workload_id, 1, "default", 0, "main")
    config: dict[str, Any] = {"Image": test_image, "Labels": key.labels()}
    try:
        first = await engine.create(key.name, config)
        assert await engine.create(key.name, config) == first
    finally:
        await engine.remove(key.name)
        await engine.close()
    assert await containers_of(docker, workload_id) == []
