"""Podman's network backends with many networks: CNI against netavark, in one run.

The local runtime gives each workload a bridge network of its own, so a host with N workloads
holds N networks. This script starts one Podman API service per backend (the project's
`deploy/local/containers.conf`, with `network_backend` set to each in turn), adds idle
networks (no container on them) up to each K, and then times, three times each (median):
creating a network; creating and starting a container on it (the demo image, `sleep`);
killing and removing that container; removing the network. It prints, for each K, both
backends side by side and their ratio. Everything it makes is named `wapi-bench-net-*` and
removed at the end (the count of leftovers is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import aiodocker

from runtimes.local.demo_image import build_demo_image
from runtimes.local.engine import PODMAN_API
from runtimes.local.podman_service import CONTAINERS_CONF, PodmanService

PREFIX = "wapi-bench-net"
STEPS = ("network create", "container create+start", "container kill+remove", "network remove")


def conf_for(backend: str, directory: Path) -> Path:
    """The project's containers.conf with `network_backend` set to `backend`."""
    lines = CONTAINERS_CONF.read_text().splitlines()
    kept = [line for line in lines if not line.startswith("network_backend")]
    if "[network]" not in kept:
        kept.append("[network]")
    at = kept.index("[network]") + 1
    kept.insert(at, f'network_backend = "{backend}"')
    path = directory / f"{backend}.conf"
    path.write_text("\n".join(kept) + "\n")
    return path


async def seconds(call: Awaitable[object]) -> float:
    started = time.monotonic()
    await call
    return time.monotonic() - started


class Backend:
    def __init__(self, docker: aiodocker.Docker, image: str) -> None:
        self.docker, self.image = docker, image
        self.idle = 0

    async def create_network(self, name: str) -> None:
        body = {"name": name, "driver": "bridge", "options": {"isolate": "true"}}
        await self.docker._query_json(
            f"{PODMAN_API}/libpod/networks/create",
            method="POST",
            data=json.dumps(body),
            versioned_api=False,
        )

    async def remove_network(self, name: str) -> None:
        await self.docker._query_json(
            f"{PODMAN_API}/libpod/networks/{name}",
            method="DELETE",
            params={"force": "true"},
            versioned_api=False,
        )

    async def fill(self, count: int) -> None:
        while self.idle < count:
            await self.create_network(f"{PREFIX}-idle-{self.idle}")
            self.idle += 1

    async def cycle(self, tag: str) -> tuple[float, ...]:
        """One round of the four steps on a network of its own."""
        network = f"{PREFIX}-probe-{tag}"
        created = await seconds(self.create_network(network))
        config: dict[str, Any] = {
            "Image": self.image,
            "Cmd": ["sleep", "300"],
            "HostConfig": {
                "NetworkMode": network,
                "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
            },
            "ExposedPorts": {"8080/tcp": {}},
        }
        started = time.monotonic()
        container = await self.docker.containers.create(config, name=f"{PREFIX}-c-{tag}")
        await container.start()
        start = time.monotonic() - started
        started = time.monotonic()
        await container.kill()
        await container.delete(force=True)
        remove = time.monotonic() - started
        removed = await seconds(self.remove_network(network))
        return created, start, remove, removed

    async def leftovers(self) -> int:
        names = [n["Name"] for n in await self.docker._query_json("networks")]
        return sum(1 for name in names if name.startswith(PREFIX))

    async def clean(self) -> int:
        for index in range(self.idle):
            with contextlib.suppress(aiodocker.DockerError):  # counted below
                await self.remove_network(f"{PREFIX}-idle-{index}")
        return await self.leftovers()


async def measure(backend: str, conf: Path, counts: list[int]) -> dict[int, list[float]]:
    socket = Path(tempfile.mkdtemp(prefix="wapi-bench-net-")) / "docker.sock"
    service = PodmanService(socket, conf=conf)
    service.start()
    docker = aiodocker.Docker(url=service.url)
    medians: dict[int, list[float]] = {}
    try:
        runner = Backend(docker, await build_demo_image(service.url))
        try:
            for count in counts:
                filled = time.monotonic()
                await runner.fill(count)
                rounds = [await runner.cycle(f"{backend}-{count}-{i}") for i in range(3)]
                medians[count] = [statistics.median(step) for step in zip(*rounds, strict=True)]
                steps = zip(STEPS, medians[count], strict=True)
                print(
                    f"  {backend:9s} K = {count:4d}: "
                    + ", ".join(f"{step} {value:.3f} s" for step, value in steps)
                    + f" (idle networks added and rounds run in {time.monotonic() - filled:.0f} s)",
                    flush=True,
                )
        finally:
            print(f"  {backend}: leftovers after clean-up: {await runner.clean()}", flush=True)
    finally:
        await docker.close()
        service.stop()
    return medians


async def main(counts: list[int]) -> None:
    print("Podman network backends: each step with K idle networks on the host, median of 3")
    with tempfile.TemporaryDirectory() as directory:
        results = {
            backend: await measure(backend, conf_for(backend, Path(directory)), counts)
            for backend in ("cni", "netavark")
        }
    print("  K      step                       CNI       netavark  CNI / netavark")
    for count in counts:
        if count not in results["cni"] or count not in results["netavark"]:
            continue
        for index, step in enumerate(STEPS):
            cni, netavark = results["cni"][count][index], results["netavark"][count][index]
            print(
                f"  {count:4d}  {step:24s}  {cni:7.3f} s  {netavark:7.3f} s"
                f"  {cni / max(netavark, 1e-6):8.1f}x"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[0, 100, 300])
    asyncio.run(main(parser.parse_args().counts))
