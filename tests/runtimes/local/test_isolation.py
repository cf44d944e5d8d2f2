"""Confinement of workload containers on real Podman, checked from the configuration the
runtime creates and from what the containers see of themselves, never by sending traffic
anywhere but a container's published port on 127.0.0.1.

What keeps a container away from the host's loopback services (Temporal, the API, the
database): it is in a network namespace of its own on its workload's bridge (never the host's),
and it holds no capability at all, so it can neither send raw packets nor route 127.0.0.0/8
out of its namespace (the bridge accepts such packets once a port is published on 127.0.0.1:
the engine's port forwarding, netavark's or CNI's portmap, sets route_localnet on it).
"""

from __future__ import annotations

import re
from typing import Any

import aiodocker
import httpx

from models.plan import ContainerPlan
from runtimes.local.engine import PODMAN_API
from runtimes.local.naming import network_name
from runtimes.local.runtime import LocalRuntime
from tests.runtimes.local.conftest import container, containers_of, plan, probe, ready, tick_until

# The primary reports what it sees of itself, then serves.
SELF_REPORT = (
    "grep -E '^(CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status; "
    "echo pids.max=$(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max); "
    "touch /written-to-root 2>/dev/null && echo root=writable || echo root=read-only; "
    "touch /tmp/scratch && echo tmp=writable; "
    "exec /bin/sh /usr/local/bin/wapi-demo serve"
)
MEMORY = 96 * 2**20


def confined(image: str, **fields: Any) -> ContainerPlan:
    return container(
        image,
        "sh",
        "-c",
        SELF_REPORT,
        cpu=0.5,
        memory_bytes=MEMORY,
        pids_limit=128,
        readiness_probe=probe(path="/ready"),
        **fields,
    )


async def inspect(docker: aiodocker.Docker, workload_id: str) -> dict[str, dict[str, Any]]:
    """Inspect results by container name within the replica (`main`, `sidecar`)."""
    found = {}
    for row in await containers_of(docker, workload_id):
        info = await docker.containers.container(row["Id"]).show()
        found[row["Labels"]["workload-api.container"]] = info
    return found


async def logs(docker: aiodocker.Docker, info: dict[str, Any]) -> str:
    lines = await docker.containers.container(info["Id"]).log(stdout=True, stderr=True)
    return "".join(lines)


async def test_containers_run_without_capabilities_with_limits_on_their_own_network(
    runtime: LocalRuntime, workload_id: str, test_image: str, docker: aiodocker.Docker
) -> None:
    sidecar = container(
        test_image, "sleep", "3600", name="sidecar", primary=False, port=None,
        cpu=0.25, memory_bytes=MEMORY // 2, pids_limit=64,
    )  # fmt: skip
    supervisor = runtime.supervisor(
        plan(workload_id, confined(test_image, read_only_root=True), sidecar), {}, []
    )
    try:
        watch = await tick_until(supervisor, ready())
    finally:
        await supervisor.close()
    by_name = await inspect(docker, workload_id)
    main, side = by_name["main"]["HostConfig"], by_name["sidecar"]["HostConfig"]

    # Limits on every container, sidecars included; no swap beyond the memory limit.
    assert (main["NanoCpus"], main["Memory"], main["MemorySwap"], main["PidsLimit"]) == (
        500_000_000, MEMORY, MEMORY, 128,
    )  # fmt: skip
    assert (side["NanoCpus"], side["Memory"], side["PidsLimit"]) == (250_000_000, MEMORY // 2, 64)
    # No capabilities, no privilege gain; the root filesystem as the plan asks.
    for host in (main, side):
        assert "no-new-privileges" in host["SecurityOpt"]
        assert not host.get("CapAdd") and not host.get("Privileged")
    assert main["ReadonlyRootfs"] is True and side["ReadonlyRootfs"] is False
    report = await logs(docker, by_name["main"])
    for field in ("CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert re.search(rf"^{field}:\s+0+$", report, re.M), report
    assert re.search(r"^NoNewPrivs:\s+1$", report, re.M), report
    assert "pids.max=128" in report
    assert "root=read-only" in report and "tmp=writable" in report

    # The primary is on its workload's network only; the sidecar shares the primary's.
    networks = by_name["main"]["NetworkSettings"]["Networks"]
    assert set(networks) == {network_name(workload_id)}
    assert side["NetworkMode"] == f"container:{by_name['main']['Id']}"
    gateway = networks[network_name(workload_id)]["Gateway"]
    assert gateway and not gateway.startswith("127.")
    # Published only on the host's loopback, where the gateway and the probes reach it.
    bindings = by_name["main"]["NetworkSettings"]["Ports"]["8080/tcp"]
    assert [binding["HostIp"] for binding in bindings] == ["127.0.0.1"]
    assert watch.last is not None
    [replica] = watch.last.replicas
    assert replica.address is not None and replica.address.startswith("127.0.0.1:")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://{replica.address}/ready")).text.strip() == "ok"


async def test_each_workload_gets_an_isolated_bridge_network_removed_with_it(
    runtime: LocalRuntime, workload_id: str, test_image: str, docker: aiodocker.Docker
) -> None:
    supervisor = runtime.supervisor(plan(workload_id, confined(test_image)), {}, [])
    try:
        await tick_until(supervisor, ready())
    finally:
        await supervisor.close()
    name = network_name(workload_id)
    network = await docker._query_json(
        f"{PODMAN_API}/libpod/networks/{name}/json", versioned_api=False
    )
    assert network["driver"] == "bridge"  # not the host's network, not slirp
    assert network["internal"] is False  # the outside world is reachable
    assert network["options"] == {"isolate": "true"}  # other workloads' networks are not
    assert network["labels"]["workload-api.workload"] == workload_id
    assert all(not subnet["gateway"].startswith("127.") for subnet in network["subnets"])

    assert await runtime.remove(workload_id) == 1
    try:
        await docker._query_json(f"networks/{name}")
        raise AssertionError(f"network {name} is still there")
    except aiodocker.DockerError as error:
        assert error.status == 404
