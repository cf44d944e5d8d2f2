"""A thin async client of the Docker Engine API (Docker, or Podman's compatible service).

Every call turns engine errors into the runtime's error types: an engine that cannot be reached
is `RuntimeUnavailableError` (retryable), an image that is missing and cannot be pulled is
`ImageNotFoundError`, a container the engine refuses to create or start is `StartFailedError`.

Why one module of this length: every engine call of the runtime, with its error
classification, in one place.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiodocker
import aiohttp
from opentelemetry import trace

from runtimes.base import LABEL_MANAGED, LABEL_WORKLOAD
from runtimes.errors import (
    ImageNotFoundError,
    RuntimeUnavailableError,
    StartFailedError,
)
from runtimes.local.host_ports import HostPorts, HostPortsExhaustedError
from runtimes.local.logstream import RawLine, demultiplex
from runtimes.local.naming import ContainerKey, managed_filter, workload_filter
from runtimes.output import EXEC_OUTPUT_BYTES, LOG_LINE_BYTES

T = TypeVar("T")

# aiodocker reports a failed connection as status 900.
_CONNECTION_FAILED = 900
# Podman answers a name conflict with 500 and this text; Docker with 409.
_NAME_IN_USE = "already in use"
_ADOPT_ATTEMPTS = 30
# Engine calls that change a workload's containers are spans of the activity's trace (the
# frequent reads of supervision are not): only inside a traced activity, so never unless
# tracing is configured.
_TRACED = frozenset({"pull image", "create", "start", "stop", "kill", "remove"})
_tracer = trace.get_tracer(__name__)
# Podman serves its own API beside Docker's; its version segment is required but not checked
# beyond the major version.
PODMAN_API = "v4.0.0"
# At most this many network creates, container creates and starts in flight per runtime. Why:
# Podman does them one at a time under its own locks, so a hundred sent together waited there
# past the client's timeout and were retried into a pile; queued here they wait without one.
CONCURRENT_CHANGES = 4


@dataclass(frozen=True)
class ContainerSummary:
    """One row of the container list: enough to reconcile without inspecting."""

    id: str
    name: str
    key: ContainerKey | None
    state: str  # created, running, paused, exited, ...
    ports: dict[int, int] = field(default_factory=dict)  # container port -> host port
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state == "running"


def _summary(row: dict[str, Any]) -> ContainerSummary:
    ports: dict[int, int] = {}
    for binding in row.get("Ports") or []:
        if binding.get("PublicPort"):
            ports[int(binding["PrivatePort"])] = int(binding["PublicPort"])
    names = row.get("Names") or [""]
    labels = row.get("Labels") or {}
    return ContainerSummary(
        id=row["Id"],
        name=names[0].lstrip("/"),
        key=ContainerKey.from_labels(labels),
        state=str(row.get("State", "")).lower(),
        ports=ports,
        labels=labels,
    )


def inspected_summary(info: dict[str, Any]) -> ContainerSummary:
    """The list row an inspect result amounts to."""
    config = info.get("Config") or {}
    labels = config.get("Labels") or {}
    return ContainerSummary(
        id=str(info["Id"]),
        name=str(info.get("Name", "")).lstrip("/"),
        key=ContainerKey.from_labels(labels),
        state=str((info.get("State") or {}).get("Status", "")).lower(),
        ports=inspected_ports(info),
        labels=labels,
    )


@dataclass(frozen=True)
class ContainerEvent:
    """The engine says something happened to a container of ours (started, died, removed...)."""

    container_id: str
    workload_id: str
    action: str
    time_nano: int


def inspected_ports(info: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port, from an inspect result."""
    ports: dict[int, int] = {}
    bindings = (info.get("NetworkSettings") or {}).get("Ports") or {}
    for spec, hosts in bindings.items():
        for host in hosts or []:
            if host.get("HostPort"):
                ports[int(spec.split("/")[0])] = int(host["HostPort"])
    return ports


class Engine:
    """The calls the local runtime makes, with errors classified."""

    def __init__(self, url: str, publish_ports: tuple[int, int] = (20000, 32767)) -> None:
        self.url = url
        self._client: aiodocker.Docker | None = None
        self._host_ports = HostPorts(*publish_ports, published=self._published_ports)
        self._images: set[str] = set()  # seen present; a create that misses one looks again
        self._changes = asyncio.Semaphore(CONCURRENT_CHANGES)

    @property
    def _docker(self) -> aiodocker.Docker:
        # Created on first use: aiohttp sessions need a running event loop, and a runtime may
        # be constructed before one runs.
        if self._client is None:
            # Short connect timeout so a dead socket fails fast; long calls (stop, pull,
            # logs) lift the total timeout themselves.
            timeout = aiohttp.ClientTimeout(total=120, sock_connect=5)
            self._client = aiodocker.Docker(url=self.url, timeout=timeout)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _call(self, call: Awaitable[T], what: str) -> T:
        """Await `call`; connection problems become `RuntimeUnavailableError`."""
        if what in _TRACED and trace.get_current_span().is_recording():
            with _tracer.start_as_current_span(f"container engine: {what}"):
                return await self._untraced(call, what)
        return await self._untraced(call, what)

    async def _untraced(self, call: Awaitable[T], what: str) -> T:
        try:
            return await call
        except aiodocker.DockerError as error:
            if error.status == _CONNECTION_FAILED:
                raise self._unavailable(what, error.message) from error
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise self._unavailable(what, str(error) or type(error).__name__) from error

    def _unavailable(self, what: str, reason: str) -> RuntimeUnavailableError:
        return RuntimeUnavailableError(
            f"the container engine at {self.url} did not answer ({what}): {reason}"
        )

    async def ping(self) -> None:
        try:
            await self._call(self._docker.version(), "ping")
        except aiodocker.DockerError as error:
            raise self._unavailable("ping", str(error)) from error

    async def list_containers(self, workload_id: str) -> list[ContainerSummary]:
        """Every container of the workload, running or not."""
        return await self._list(workload_filter(workload_id))

    async def _published_ports(self) -> list[int]:
        """Host ports published by any managed container, running or not."""
        rows = await self._list(managed_filter())
        return [port for row in rows for port in row.ports.values()]

    async def _list(self, filter_by: dict[str, list[str]]) -> list[ContainerSummary]:
        filters = json.dumps(filter_by)
        try:
            rows = await self._call(
                self._docker._query_json(
                    "containers/json", params={"all": "true", "filters": filters}
                ),
                "list containers",
            )
        except aiodocker.DockerError as error:
            raise self._unavailable("list containers", str(error)) from error
        return [_summary(row) for row in rows]

    async def inspect(self, container_id: str) -> dict[str, Any] | None:
        """The container's full description, or None when it no longer exists."""
        try:
            return await self._call(
                self._docker.containers.container(container_id).show(), "inspect"
            )
        except aiodocker.DockerError as error:
            if error.status == 404:
                return None
            raise self._unavailable("inspect", str(error)) from error

    async def cpu_time(self, container_id: str) -> int | None:
        """CPU time the container has used (ns, cumulative), or None if it is gone."""
        try:
            stats: Any = await self._call(
                self._docker.containers.container(container_id).stats(stream=False), "stats"
            )
        except aiodocker.DockerError as error:
            if error.status in (404, 409):
                return None
            raise self._unavailable("stats", str(error)) from error
        if isinstance(stats, list):  # aiodocker answers a one-element list
            stats = stats[0] if stats else {}
        usage = ((stats or {}).get("cpu_stats") or {}).get("cpu_usage") or {}
        total = usage.get("total_usage")
        return int(total) if isinstance(total, int | float) else None

    async def cpu_limit(self, container_id: str) -> float:
        """The container's CPU limit in cores (0 when it has none)."""
        info = await self.inspect(container_id) or {}
        host = info.get("HostConfig") or {}
        if host.get("NanoCpus"):
            return float(host["NanoCpus"]) / 1e9
        quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 0
        return quota / period if quota > 0 and period > 0 else 0.0

    async def ensure_image(self, image: str) -> None:
        """Use the local image if present, otherwise pull it once."""
        if image in self._images:
            return
        try:
            await self._call(self._docker.images.inspect(image), "inspect image")
            self._images.add(image)
            return
        except aiodocker.DockerError as error:
            if error.status != 404:
                raise self._unavailable("inspect image", str(error)) from error
        try:
            # No timeout of its own: a pull takes as long as the caller's deadline allows
            # (a starting workload's ready timeout).
            await self._call(self._docker.images.pull(image, timeout=None), "pull image")
        except aiodocker.DockerError as error:
            raise ImageNotFoundError(
                f"image '{image}' is not present locally and pulling it failed: {error.message}"
            ) from error
        self._images.add(image)

    async def ensure_network(self, name: str, labels: dict[str, str]) -> None:
        """A bridge network of this name, created if missing. On Podman (its own API) it is
        `isolate`d: no traffic from other networks' containers reaches it. Docker isolates
        user-defined bridges from each other already."""
        # Created without looking first: Podman answers an inspect of a network by opening
        # every running container's network namespace, and a wave of retried creates at 200
        # containers turned that into tens of thousands of open files.
        podman = {"name": name, "driver": "bridge", "options": {"isolate": "true"}}
        docker = {"Name": name, "Driver": "bridge", "CheckDuplicate": True, "Labels": labels}
        try:
            async with self._changes:
                try:
                    await self._call(
                        self._docker._query_json(
                            f"{PODMAN_API}/libpod/networks/create",
                            method="POST",
                            data=json.dumps(podman | {"labels": labels}),
                            versioned_api=False,
                        ),
                        "create network",
                    )
                except aiodocker.DockerError as error:
                    if error.status != 404:  # 404: not Podman
                        raise
                    await self._call(
                        self._docker._query_json(
                            "networks/create", method="POST", data=json.dumps(docker)
                        ),
                        "create network",
                    )
        except aiodocker.DockerError as error:
            if error.status == 409 or "already" in error.message:  # made before, or by a racer
                return
            raise StartFailedError(
                f"the engine refused to create network '{name}': {error.message}"
            ) from error

    async def remove_network(self, name: str) -> None:
        """Remove the network; a missing one is fine."""
        await self._ignoring_gone(
            self._docker._query_json(f"networks/{name}", method="DELETE"), "remove network"
        )

    async def create(self, name: str, config: dict[str, Any]) -> str:
        """Create the container and return its id; adopt an existing one of the same name.
        Ports published with no host port get one from the publish range.
        An image removed since `ensure_image` saw it is looked for (and pulled) again, once."""
        try:
            return await self._create(name, config)
        except ImageNotFoundError:
            image = str(config.get("Image"))
            if image not in self._images:
                raise
            self._images.discard(image)
            await self.ensure_image(image)
            return await self._create(name, config)

    async def _create(self, name: str, config: dict[str, Any]) -> str:
        containers = self._docker.containers
        await self._choose_host_ports(config)
        try:
            async with self._changes:
                created = await self._call(containers.create(config, name=name), "create")
            return created.id
        except aiodocker.DockerError as error:
            if error.status == 409 or _NAME_IN_USE in error.message:
                existing = await self._created_by_another(name)
                if existing is not None:
                    return existing
            if error.status == 404 and "image" in error.message.lower():
                raise ImageNotFoundError(
                    f"image '{config.get('Image')}' is not present: {error.message}"
                ) from error
            raise StartFailedError(
                f"the engine refused to create container '{name}': {error.message}"
            ) from error

    async def _choose_host_ports(self, config: dict[str, Any]) -> None:
        bindings = [
            binding
            for hosts in (config.get("HostConfig") or {}).get("PortBindings", {}).values()
            for binding in hosts
            if not binding.get("HostPort")
        ]
        if not bindings:
            return
        try:
            ports = await self._host_ports.claim(len(bindings))
        except HostPortsExhaustedError as error:
            raise StartFailedError(str(error)) from error
        for binding, port in zip(bindings, ports, strict=True):
            binding["HostPort"] = str(port)

    async def _created_by_another(self, name: str) -> str | None:
        """The id of the container another creator made under `name`. Podman reserves the
        name before the container can be inspected, so a racing creator may wait a moment."""
        for _ in range(_ADOPT_ATTEMPTS):
            existing = await self.inspect(name)
            if existing is not None:
                return str(existing["Id"])
            await asyncio.sleep(0.1)
        return None

    async def start(self, container_id: str, name: str) -> None:
        """Start the container; a command that cannot run is a `StartFailedError`."""
        try:
            async with self._changes:
                await self._call(self._docker.containers.container(container_id).start(), "start")
        except aiodocker.DockerError as error:
            if error.status == 304:  # already running
                return
            if error.status == 404:  # removed since it was listed: the next tick recreates it
                raise self._unavailable("start", error.message) from error
            raise StartFailedError(
                f"container '{name}' could not start: {error.message}"
            ) from error

    async def stop(self, container_id: str, grace_seconds: int) -> None:
        """SIGTERM, then SIGKILL after the grace period. Missing or stopped: nothing to do."""
        container = self._docker.containers.container(container_id)
        await self._ignoring_gone(container.stop(t=grace_seconds), "stop")

    async def kill(self, container_id: str) -> None:
        container = self._docker.containers.container(container_id)
        await self._ignoring_gone(container.kill(), "kill")

    async def remove(self, container_id: str) -> None:
        # Kill first: Podman's forced removal waits for the stop timeout of an idle PID 1.
        await self.kill(container_id)
        container = self._docker.containers.container(container_id)
        await self._ignoring_gone(container.delete(force=True), "remove")

    async def _ignoring_gone(self, call: Awaitable[None], what: str) -> None:
        try:
            await self._call(call, what)
        except aiodocker.DockerError as error:
            # 404: gone already; 304/409 (Podman: 500 "state improper"): not running.
            if error.status in (304, 404, 409) or any(
                hint in error.message for hint in ("not running", "state improper")
            ):
                return
            raise self._unavailable(what, str(error)) from error

    async def exec(self, container_id: str, command: list[str]) -> tuple[int, str]:
        """Run `command` in the container; return its exit code and combined output."""
        container = self._docker.containers.container(container_id)
        try:
            execution = await self._call(container.exec(command), "exec")
            output = bytearray()
            async with execution.start(detach=False) as stream:
                # Read to the end (the exit code comes after), keeping only the first bytes.
                while (message := await stream.read_out()) is not None:
                    output += message.data[: EXEC_OUTPUT_BYTES - len(output)]
            details = await self._call(execution.inspect(), "exec inspect")
        except aiodocker.DockerError as error:
            if error.status == _CONNECTION_FAILED:
                raise self._unavailable("exec", error.message) from error
            # A stopped container or a missing executable: the probe fails, nothing more.
            return -1, error.message
        except (aiohttp.ClientError, OSError) as error:
            raise self._unavailable("exec", str(error)) from error
        code = details.get("ExitCode")
        return (code if isinstance(code, int) else -1), output.decode(errors="replace")

    async def log_lines(
        self,
        container_id: str,
        *,
        tail: int | None = None,
        since: float | None = None,
        follow: bool = False,
        max_line_bytes: int = LOG_LINE_BYTES,
    ) -> AsyncIterator[RawLine]:
        """Lines of the container's log with their stream and timestamp, each cut at
        `max_line_bytes`."""
        params = {"stdout": "true", "stderr": "true", "timestamps": "true"}
        params["tail"] = "all" if tail is None else str(tail)
        if since is not None:
            params["since"] = f"{since:.6f}"
        if follow:
            params["follow"] = "true"
        try:
            async with self._docker._query(
                f"containers/{container_id}/logs",
                params=params,
                timeout=aiohttp.ClientTimeout(sock_connect=5),
            ) as response:
                async for line in demultiplex(response.content, max_line_bytes=max_line_bytes):
                    yield line
        except aiodocker.DockerError as error:
            if error.status == 404:
                return
            if error.status == _CONNECTION_FAILED:
                raise self._unavailable("logs", error.message) from error
            raise self._unavailable("logs", str(error)) from error
        except (aiohttp.ClientError, OSError) as error:
            raise self._unavailable("logs", str(error)) from error

    async def events(self, since: float) -> AsyncIterator[ContainerEvent]:
        """Events of managed containers from `since` (epoch seconds) on, as they happen; ends
        when the engine closes the stream. Replaying from `since` means a subscription that
        opens late misses nothing (Podman answers nothing, not even headers, until an event)."""
        filters = json.dumps({"type": ["container"], "label": [f"{LABEL_MANAGED}=true"]})
        params = {"filters": filters, "since": str(int(since))}
        try:
            async with self._docker._query(
                "events",
                params=params,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=None),
            ) as response:
                while line := await response.content.readline():
                    if event := _container_event(line):
                        yield event
        except aiodocker.DockerError as error:
            raise self._unavailable("events", error.message) from error
        except (aiohttp.ClientError, OSError, ValueError) as error:
            raise self._unavailable("events", str(error) or type(error).__name__) from error


def _container_event(line: bytes) -> ContainerEvent | None:
    try:
        event = json.loads(line)
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        return ContainerEvent(
            container_id=str(actor.get("ID") or event["id"]),
            workload_id=str(attributes[LABEL_WORKLOAD]),
            action=str(event.get("Action") or event.get("status") or ""),
            time_nano=int(event.get("timeNano") or 0),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # not one of ours, or not an event we understand
