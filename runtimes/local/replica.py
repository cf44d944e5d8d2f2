"""What a supervisor remembers about one replica between ticks, and how it reports it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from models.plan import ContainerPlan, GroupPlan
from models.status import ReplicaState
from runtimes.base import ProbeKind, ProbeResult, ReplicaStatus
from runtimes.local.naming import ContainerKey, ReplicaKey
from runtimes.local.probes import ProbeTracker

_PROBE_KINDS: tuple[ProbeKind, ...] = ("startup", "readiness", "liveness")


@dataclass
class Member:
    """One container of a replica, as last observed."""

    plan: ContainerPlan
    key: ContainerKey
    id: str | None = None
    state: str = "missing"  # the engine's state, or "missing" / "started" (by us, unobserved)
    down: bool = False  # exited or stopped by us, and waiting for a restart
    exit_code: int | None = None

    @property
    def up(self) -> bool:
        return self.state in ("running", "started") and not self.down


@dataclass
class Replica:
    key: ReplicaKey
    group: GroupPlan
    members: list[Member]  # the primary first
    restarts: int = 0
    streak: int = 0  # restarts in a row without becoming (and staying) ready
    restart_at: float | None = None  # monotonic time of a scheduled restart
    reason: str = ""  # why it last went down
    ready: bool = False
    ready_since: float | None = None
    started_at: datetime | None = None
    ports: dict[int, int] = field(default_factory=dict)  # container port -> host port
    trackers: list[ProbeTracker] = field(default_factory=list)

    @classmethod
    def planned(cls, key: ReplicaKey, group: GroupPlan) -> Replica:
        ordered = sorted(group.containers, key=lambda c: not c.primary)
        members = [Member(plan=c, key=key.container(c.name)) for c in ordered]
        return cls(key=key, group=group, members=members)

    @property
    def name(self) -> str:
        return self.key.name

    @property
    def primary(self) -> Member:
        return self.members[0]

    @property
    def sidecars(self) -> list[Member]:
        return self.members[1:]

    def reset_probes(self, member: Member, now: float) -> None:
        """Start the probes of a container afresh, as when it (re)starts. The last results
        stay visible until the new probes report."""
        plan = member.plan
        previous = {t.kind: t.last for t in self.trackers if t.container == plan.name}
        self.trackers = [t for t in self.trackers if t.container != plan.name]
        probes = zip(
            _PROBE_KINDS,
            (plan.startup_probe, plan.readiness_probe, plan.liveness_probe),
            strict=True,
        )
        for kind, probe in probes:
            if probe is not None:
                tracker = ProbeTracker.start(kind, plan.name, probe, now)
                tracker.last = previous.get(kind)
                self.trackers.append(tracker)

    def keep_passing(self, member: Member, last: dict[ProbeKind, ProbeResult]) -> None:
        """An adopted container that was ready: its startup and readiness probes count as
        passing until they report otherwise (a failure threshold away), and its `last`
        results stay shown until then."""
        for tracker in self.trackers:
            if tracker.container != member.plan.name:
                continue
            if tracker.kind in ("startup", "readiness"):
                tracker.passing = True
            tracker.last = tracker.last or last.get(tracker.kind)

    def started_up(self, container: str) -> bool:
        """Whether the container's startup probe (if any) has passed."""
        return all(
            t.passing for t in self.trackers if t.container == container and t.kind == "startup"
        )

    def _answered(self, member: Member) -> bool:
        return any(
            t.passing and t.kind in ("startup", "readiness")
            for t in self.trackers
            if t.container == member.plan.name
        )

    def member(self, container: str) -> Member:
        return next(m for m in self.members if m.plan.name == container)

    def evaluate_ready(self) -> bool:
        """Running, started up, and every readiness probe passing (none: ready once seen
        running). A container the engine has not reported running yet counts as running
        once one of its startup or readiness probes passes: it answered."""
        if self.restart_at is not None:
            return False
        if not all(m.up and (m.state == "running" or self._answered(m)) for m in self.members):
            return False
        return all(t.passing for t in self.trackers if t.kind in ("startup", "readiness"))

    def _state(self, failed: bool) -> ReplicaState:
        if failed or self.restart_at is not None or any(m.down for m in self.members):
            code = self.primary.exit_code
            return "terminated" if code == 0 and not failed else "crashed"
        if not all(m.up for m in self.members):
            return "pending"
        if all(self.started_up(m.plan.name) for m in self.members):
            return "running"
        return "starting"

    def _probe_results(self) -> dict[ProbeKind, ProbeResult]:
        results: dict[ProbeKind, ProbeResult] = {}
        for kind in _PROBE_KINDS:
            seen = [t.last for t in self.trackers if t.kind == kind and t.last is not None]
            if seen:
                # A failing container's result says more than a passing one's.
                results[kind] = min(seen, key=lambda r: (r.ok, -r.checked_at.timestamp()))
        return results

    def status(self, host: str, *, failed: bool = False) -> ReplicaStatus:
        port = self.group.primary.port
        host_port = self.ports.get(port) if port else None
        up = all(m.up for m in self.members)
        return ReplicaStatus(
            group=self.group.name,
            index=self.key.index,
            generation=self.key.generation,
            name=self.name,
            state=self._state(failed),
            ready=self.ready,
            restarts=self.restarts,
            started_at=self.started_at,
            address=f"{host}:{host_port}" if host_port and up else None,
            probes=self._probe_results(),
            message="" if self.ready else self.reason,
        )
