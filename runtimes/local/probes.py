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

from models.plan import ContainerPlan, GroupPlan
from models.spec import Probe
from runtimes import http_check
from runtimes.base import ProbeKind, ProbeResult
from runtimes.local.engine import Engine

Transition = Literal["failed", "recovered"]
_MAX_MESSAGE = 300
# Until a container's startup or readiness probe first succeeds, a failure within its first
# period is retried sooner (after this delay, growing by half each time: about a dozen
# probes in a 10 s period) and not counted: a replica that answers 50 ms after it starts is
# ready then, not a whole period later.
EARLY_RETRY_SECONDS = 0.05
EARLY_RETRY_GROWTH = 1.5


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


async def http_get(probe: Probe, host: str, host_port: int, port: int) -> Outcome:
    """GET the probe's path at `host:host_port`, where the container's `port` is published."""
    assert probe.path is not None
    what = f"HTTP GET {probe.path} on port {port}"
    try:
        answer = await http_check.http_get(
            host,
            host_port,
            probe.path,
            within=probe.timeout_seconds,
            scheme=probe.scheme,
            headers=probe.http_headers,
        )
    except http_check.HttpCheckError as error:
        return Outcome(False, f"{what} {error}")
    # Kubernetes counts 2xx and 3xx as success.
    return Outcome(200 <= answer.status < 400, f"{what} returned {answer.status}")


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
    early_until: float = 0.0  # monotonic end of the first period (see EARLY_RETRY_SECONDS)
    early_delay: float = EARLY_RETRY_SECONDS

    @classmethod
    def start(cls, kind: ProbeKind, container: str, probe: Probe, now: float) -> ProbeTracker:
        first = now + probe.initial_delay_seconds
        early = first + probe.period_seconds if kind != "liveness" else 0.0
        return cls(kind, container, probe, next_due=first, early_until=early)

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
        early = self.passing is None and self.successes == 0 and now < self.early_until
        if early and not outcome.ok:
            self.next_due = min(now + self.early_delay, self.early_until)
            self.early_delay *= EARLY_RETRY_GROWTH
            return None
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
