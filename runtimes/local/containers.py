"""Docker create-configs for the containers of a replica (the primary and its sidecars).

Every container is confined, whatever its plan says: no Linux capabilities at all (so no raw
sockets or route changes, which is what could reach the host's loopback services through the
bridge), no privilege gain through setuid binaries, CPU, memory (without extra swap) and pids
limits, optionally a read-only root. Primaries join their workload's own bridge network
(`network_name`), isolated from other workloads' networks and never the host's: they reach
each other and the outside world, and the host only through ports published on 127.0.0.1.
Sidecars share their primary's network namespace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.plan import ContainerPlan, GroupPlan
from runtimes.errors import StartFailedError
from runtimes.local.naming import ContainerKey, network_name
from runtimes.local.probes import probe_port

# A tmpfs for scratch files when the root filesystem is read-only.
READ_ONLY_TMPFS = {"/tmp": "rw,nosuid,nodev,size=64m"}

# Extra labels of the local runtime: sidecars go before their primary when removing (Podman
# refuses to remove a container others share the network of), and a sidecar records which
# primary's network it joined, so it is recreated when the primary is.
LABEL_ROLE = "workload-api.role"
LABEL_NETWORK_OF = "workload-api.network-of"

# Limits at or below the engine defaults: raising them needs CAP_SYS_RESOURCE, which some
# hosts do not grant.
ULIMITS = [
    {"Name": "nofile", "Soft": 1024, "Hard": 1024},
    {"Name": "nproc", "Soft": 4096, "Hard": 4096},
]
PUBLISH_HOST_IP = "127.0.0.1"


def published_ports(group: GroupPlan) -> list[int]:
    """The primary's port and every port an HTTP or TCP probe of the group targets."""
    ports = {group.primary.port} if group.primary.port else set()
    for container in group.containers:
        for probe in (container.startup_probe, container.readiness_probe, container.liveness_probe):
            if probe is not None and (port := probe_port(probe, container, group)):
                ports.add(port)
    return sorted(ports)


def environment(container: ContainerPlan, secrets: Mapping[str, str]) -> list[str]:
    """KEY=value pairs: the plan's variables, then those whose values are secrets."""
    pairs = [f"{name}={value}" for name, value in container.env.items()]
    for variable in container.secret_env:
        if variable.secret_id not in secrets:
            raise StartFailedError(
                f"environment variable '{variable.name}' of container '{container.name}' "
                f"refers to secret '{variable.secret_id}', which is not available"
            )
        pairs.append(f"{variable.name}={secrets[variable.secret_id]}")
    return pairs


def create_config(
    container: ContainerPlan,
    key: ContainerKey,
    group: GroupPlan,
    secrets: Mapping[str, str],
    *,
    primary_id: str | None,
    stop_grace_seconds: int,
) -> dict[str, Any]:
    """The create body; sidecars (`primary_id` set) join the primary's network namespace."""
    labels = key.labels() | {LABEL_ROLE: "primary" if container.primary else "sidecar"}
    host: dict[str, Any] = {
        "Ulimits": ULIMITS,
        "RestartPolicy": {"Name": "no"},  # the supervisor restarts, with backoff and events
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"],
        "PidsLimit": container.pids_limit,
        "ReadonlyRootfs": container.read_only_root,
    }
    if container.read_only_root:
        host["Tmpfs"] = READ_ONLY_TMPFS
    config: dict[str, Any] = {
        "Image": container.image,
        "Env": environment(container, secrets),
        "Labels": labels,
        "StopTimeout": stop_grace_seconds,
        "Tty": False,
        "HostConfig": host,
    }
    if container.entrypoint is not None:
        config["Entrypoint"] = container.entrypoint
    if container.command is not None:
        config["Cmd"] = container.command
    if container.cpu:
        host["NanoCpus"] = int(container.cpu * 1e9)
    if container.memory_bytes:
        # Swap equal to the limit: memory plus no swap, so the limit is the limit.
        host["Memory"] = host["MemorySwap"] = container.memory_bytes
    if container.gpu_count:
        host["DeviceRequests"] = [
            {"Driver": "nvidia", "Count": container.gpu_count, "Capabilities": [["gpu"]]}
        ]
    if primary_id is None:
        ports = published_ports(group)
        config["ExposedPorts"] = {f"{port}/tcp": {} for port in ports}
        # An empty HostPort asks the engine for a free one; read back from the container list.
        host["PortBindings"] = {
            f"{port}/tcp": [{"HostIp": PUBLISH_HOST_IP, "HostPort": ""}] for port in ports
        }
        host["NetworkMode"] = network_name(key.workload_id)
    else:
        labels[LABEL_NETWORK_OF] = primary_id
        host["NetworkMode"] = f"container:{primary_id}"
    return config
