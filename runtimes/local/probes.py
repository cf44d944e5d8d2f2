"""Probes as a kubelet runs them: HTTP GET, TCP connect or exec, with Kubernetes timing rules.

A `ProbeTracker` owns one probe of one container: when it is due (initial delay, then every
period), and its thresholded verdict (`passing`), which flips only after `successThreshold`
successes or `failureThreshold` failures in a row.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import httpx

from models.plan import ContainerPlan, GroupPlan
from models.spec import Probe
from runtimes.base import ProbeKind, ProbeResult
from runtimes.local.engine import Engine

Transition = Literal["failed", "recovered"]
_MAX_MESSAGE = 300


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


def probe_port(probe: Probe, container: ContainerPlan, group: GroupPlan) -> int | None:
    """The container port an HTTP or TCP probe targets (None for exec probes)."""
    if probe.path is not None:
        explicit = probe.port
    elif probe.tcp_socket is not None:
        explicit = probe.tcp_socket.port
    else:
        return None
    # Sidecars share the primary's network, so a sidecar probe without a port means the pod's.
    return explicit or container.port or group.primary.port


async def http_get(
    client: httpx.AsyncClient, probe: Probe, host: str, host_port: int, port: int
) -> Outcome:
    """GET the probe's path at `host:host_port`, where the container's `port` is published."""
    scheme = probe.scheme.lower()
    url = f"{scheme}://{host}:{host_port}{probe.path}"
    what = f"HTTP GET {probe.path} on port {port}"
    try:
        response = await client.get(url, headers=probe.http_headers, timeout=probe.timeout_seconds)
    except httpx.TimeoutException:
        return Outcome(False, f"{what} timed out after {probe.timeout_seconds}s")
    except httpx.HTTPError as error:
        return Outcome(False, f"{what} failed: {error or type(error).__name__}")
    # Kubernetes counts 2xx and 3xx as success.
    if 200 <= response.status_code < 400:
        return Outcome(True, f"{what} returned {response.status_code}")
    return Outcome(False, f"{what} returned {response.status_code}")


async def tcp_connect(host: str, host_port: int, port: int, seconds: float) -> Outcome:
    """Connect to `host:host_port`, where the container's `port` is published."""
    what = f"TCP connect to port {port}"
    try:
        async with asyncio.timeout(seconds):
            _, writer = await asyncio.open_connection(host, host_port)
    except TimeoutError:
        return Outcome(False, f"{what} timed out after {seconds:g}s")
    except OSError as error:
        return Outcome(False, f"{what} failed: {error.strerror or error}")
    writer.close()
    return Outcome(True, f"{what} succeeded")


async def run_exec(engine: Engine, container_id: str, probe: Probe) -> Outcome:
    assert probe.exec_ is not None
    command = probe.exec_.command
    what = f"exec {command[0]!r}"
    try:
        async with asyncio.timeout(probe.timeout_seconds):
            code, output = await engine.exec(container_id, command)
    except TimeoutError:
        return Outcome(False, f"{what} timed out after {probe.timeout_seconds}s")
    tail = output.strip()[-_MAX_MESSAGE:]
    detail = f": {tail}" if tail else ""
    return Outcome(code == 0, f"{what} exited with code {code}{detail}")


@dataclass
class ProbeTracker:
    """State of one probe of one running container, reset whenever the container starts."""

    kind: ProbeKind
    container: str
    probe: Probe
    next_due: float
    successes: int = 0
    failures: int = 0
    passing: bool | None = None  # undecided until a threshold is reached
    last: ProbeResult | None = field(default=None)

    @classmethod
    def start(cls, kind: ProbeKind, container: str, probe: Probe, now: float) -> ProbeTracker:
        return cls(kind, container, probe, next_due=now + probe.initial_delay_seconds)

    def due(self, now: float) -> bool:
        # A startup probe that passed is done for the life of the container.
        return not (self.kind == "startup" and self.passing) and now >= self.next_due

    def record(self, outcome: Outcome, now: float) -> Transition | None:
        """Count one result; return the verdict's transition, if any."""
        self.next_due = now + self.probe.period_seconds
        wall = datetime.now(UTC)
        changed = self.last is None or self.last.ok != outcome.ok
        self.last = ProbeResult(
            ok=outcome.ok,
            message=outcome.message[:_MAX_MESSAGE],
            checked_at=wall,
            changed_at=wall if changed or self.last is None else self.last.changed_at,
        )
        if outcome.ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.passing is not True and self.successes >= self.probe.success_threshold:
                was, self.passing = self.passing, True
                return "recovered" if was is False else None
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.passing is not False and self.failures >= self.probe.failure_threshold:
                self.passing = False
                return "failed"
        return None

    @property
    def describe(self) -> str:
        message = self.last.message if self.last else "no result yet"
        return f"{self.kind} probe of container '{self.container}' failed: {message}"
