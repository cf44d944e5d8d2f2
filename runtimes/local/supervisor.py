"""The local supervisor: a kubelet for one generation of one workload on a Docker-API engine.

It keeps a view of the workload's containers: listed once at the start (and again only if
the engine's event stream broke), then changed by what it does itself and by the engine's
events, each of which costs one inspect of the container it names. A tick removes what the
plan does not include, creates or adopts what is missing, restarts what stopped (with
backoff), collects probe results, starts the probes that are due, and reports. Between ticks
`wait()` sleeps until an event, a finished probe, or the next probe or restart falls due, so
an idle workload costs its probes and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from models.plan import RunPlan
from runtimes.base import (
    Observation,
    ProbeKind,
    ProbeResult,
    ReplicaStatus,
    RestartPolicy,
    RuntimeEvent,
)
from runtimes.cancellation import finish_if_cancelled
from runtimes.local.containers import LABEL_NETWORK_OF, LABEL_ROLE, create_config
from runtimes.local.engine import ContainerSummary, Engine, inspected_ports, inspected_summary
from runtimes.local.events import EngineEvents
from runtimes.local.logstream import parse_time
from runtimes.local.naming import ContainerKey, ReplicaKey, network_name, workload_labels
from runtimes.local.prober import Prober
from runtimes.local.replica import Member, Replica
from runtimes.output import REASON_LINE_BYTES, REASON_LINES, last_lines

# A replica must stay ready this long before its crash-loop count starts again, so a process
# that answers for a moment and then dies still counts as crash-looping.
READY_STABLE_SECONDS = 2.0
# While the engine's event stream is down, look at the containers this often instead.
POLL_SECONDS = 2.0

Details = dict[str, str | int | float | bool | None]


def _event(kind: str, message: str, replica: Replica, **details: str | int | None) -> RuntimeEvent:
    base: Details = {"replica": replica.name, "group": replica.group.name}
    return RuntimeEvent(type=kind, message=message, details=base | details)


class LocalSupervisor:
    """Brings one `RunPlan` about and keeps it so; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        events: EngineEvents,
        plan: RunPlan,
        secrets: Mapping[str, str],
        previous: list[ReplicaStatus],
        *,
        policy: RestartPolicy,
        probe_host: str,
        stop_grace_seconds: int,
    ) -> None:
        self._engine, self._plan, self._secrets = engine, plan, dict(secrets)
        self._policy, self._host, self._grace = policy, probe_host, stop_grace_seconds
        self._replicas: dict[ReplicaKey, Replica] = {}
        for group in plan.groups:
            for index in range(group.replicas):
                key = ReplicaKey(plan.workload_id, plan.generation, group.name, index)
                self._replicas[key] = Replica.planned(key, group)
        # Replicas that were ready when the last supervisor left them; an adopted running
        # container of one stays ready until its own probes say otherwise, so a rescale
        # (which starts a new supervisor) never takes the workload's replicas out of traffic.
        # Their last probe results are shown until the new probes report.
        self._were_ready: dict[ReplicaKey, dict[ProbeKind, ProbeResult]] = {}
        for status in previous:  # restart counts survive a worker restart
            seen = ReplicaKey(plan.workload_id, status.generation, status.group, status.index)
            if replica := self._replicas.get(seen):
                replica.restarts = status.restarts
                if status.ready:
                    self._were_ready[seen] = dict(status.probes)
        self._members: set[ContainerKey] = {
            m.key for r in self._replicas.values() for m in r.members
        }
        self._network_ready = False
        self._failure: str | None = None
        self._failed: ReplicaKey | None = None
        self._wake = asyncio.Event()
        self._prober = Prober(engine, probe_host, on_result=self._wake.set)
        # The engine's containers of this workload, by id, as last known.
        self._view: dict[str, ContainerSummary] = {}
        self._stale = True  # list them all at the next tick
        self._dirty: set[str] = set()  # ids an engine event named since the last tick
        # Probed primaries this supervisor started and inspected itself: their `start` event
        # tells nothing new (an exit that follows has its own event).
        self._own_starts: set[str] = set()
        self._events = events
        self._unsubscribe = events.subscribe(plan.workload_id, self)

    async def close(self) -> None:
        self._unsubscribe()
        await self._prober.close()

    # What the engine's event stream tells (`runtimes.local.events.Listener`)

    def container_changed(self, container_id: str, action: str) -> None:
        if action == "start" and container_id in self._own_starts:
            self._own_starts.discard(container_id)
            return
        self._dirty.add(container_id)
        self._wake.set()

    def resync(self) -> None:
        self._stale = True
        self._own_starts.clear()
        self._wake.set()

    async def wait(self, at_most: float) -> bool:
        """Until an event, a probe result, a probe or restart falling due (True), or `at_most`
        seconds (False)."""
        limit = at_most
        if self._failure is None:
            limit = min(limit, self._next_due() - time.monotonic())
            if not self._events.streaming:
                self._stale = True
                limit = min(limit, POLL_SECONDS)
        if limit > 0 and not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(limit):
                    await self._wake.wait()
        else:
            await asyncio.sleep(0)  # never return without letting the probes run
        woken = self._wake.is_set() or limit < at_most
        self._wake.clear()
        return woken

    def _next_due(self) -> float:
        due = self._prober.next_due(self._replicas.values())
        for replica in self._replicas.values():
            if replica.restart_at is not None:
                due = min(due, replica.restart_at)
            # Only a ready replica's streak is about to end: a replica that restarted keeps
            # its old `ready_since`, and counting that would make every wait return at once.
            if replica.streak and replica.ready and replica.ready_since is not None:
                due = min(due, replica.ready_since + READY_STABLE_SECONDS)
        return due

    async def tick(self) -> Observation:
        """One reconcile-probe-report step (see the module docstring).

        Raises:
            RuntimeUnavailableError: the engine did not answer (retry later).
            ImageNotFoundError, StartFailedError: the plan cannot run at all.
        """
        events: list[RuntimeEvent] = []
        if self._failure is None:  # after a crash loop, only report
            await self._refresh_view()
            await self._remove_strays(list(self._view.values()), events)
            current = {
                row.key: row for row in self._view.values() if row.key and row.key in self._members
            }
            for replica in self._replicas.values():
                await self._reconcile(replica, current, events)
            await self._run_probes(events)
            now = time.monotonic()
            for replica in self._replicas.values():
                self._evaluate(replica, now, events)
        statuses = [
            r.status(self._host, failed=key == self._failed) for key, r in self._replicas.items()
        ]
        return Observation(replicas=statuses, events=events, failure=self._failure)

    async def _refresh_view(self) -> None:
        """List the workload's containers if the view is stale, else inspect those that
        events named. A failed call leaves the work for the next tick."""
        if self._stale:
            self._dirty.clear()
            rows = await self._engine.list_containers(self._plan.workload_id)
            self._view = {row.id: row for row in rows}
            self._stale = False
            return
        while self._dirty:
            # Taken off before the inspect: an event that arrives while it is in flight (a
            # process that dies as it starts) marks the container again instead of being lost.
            container_id = self._dirty.pop()
            try:
                info = await self._engine.inspect(container_id)
            except BaseException:
                self._dirty.add(container_id)
                raise
            if info is None:
                self._view.pop(container_id, None)
            else:
                self._view[container_id] = inspected_summary(info)

    def _seen(self, member: Member, state: str) -> None:
        """Record what this supervisor just did to a container, ahead of the engine's event."""
        assert member.id is not None
        known = self._view.get(member.id)
        if known is not None:
            self._view[member.id] = replace(known, state=state)
        else:
            self._view[member.id] = ContainerSummary(
                id=member.id, name=member.key.name, key=member.key, state=state
            )

    async def _remove(self, row: ContainerSummary) -> None:
        await self._engine.remove(row.id)
        self._view.pop(row.id, None)

    async def _remove_strays(
        self, rows: list[ContainerSummary], events: list[RuntimeEvent]
    ) -> None:
        strays = [row for row in rows if row.key not in self._members]
        # Sidecars first: Podman will not remove a container whose network others share.
        for row in sorted(strays, key=lambda row: row.labels.get(LABEL_ROLE) == "primary"):
            await self._remove(row)
        for name in sorted({row.key.replica.name if row.key else row.name for row in strays}):
            message = f"removed {name}: the plan (generation {self._plan.generation}) lacks it"
            events.append(
                RuntimeEvent(type="replica_removed", message=message, details={"replica": name})
            )

    async def _reconcile(
        self,
        replica: Replica,
        current: dict[ContainerKey, ContainerSummary],
        events: list[RuntimeEvent],
    ) -> None:
        now = time.monotonic()
        primary = replica.primary
        if primary.key not in current:
            # A new replica, or its primary vanished: sidecars joined the old network, so
            # they go too and everything is created afresh.
            for member in replica.sidecars:
                if row := current.pop(member.key, None):
                    await self._remove(row)
            for member in replica.members:
                await self._create(replica, member, now)
            events.append(_event("replica_created", f"created {replica.name}", replica))
            events.append(_event("replica_started", f"started {replica.name}", replica))
            return
        for member in replica.members:
            row = current.get(member.key)
            network_of = current[primary.key].id
            if row and member is not primary and row.labels.get(LABEL_NETWORK_OF) != network_of:
                await self._remove(row)
                row = None
            if row is None:
                await self._create(replica, member, now)
            else:
                await self._observe(replica, member, row, now, events)
        replica.ports = current[primary.key].ports or replica.ports
        if replica.restart_at is not None and now >= replica.restart_at:
            await self._restart(replica, now, events)

    async def _observe(
        self,
        replica: Replica,
        member: Member,
        row: ContainerSummary,
        now: float,
        events: list[RuntimeEvent],
    ) -> None:
        """Update one member from the list; inspect only when its state changed."""
        adopted = member.id is None
        member.id = row.id
        if row.state == "running":
            if adopted:  # running before this supervisor existed: probe it from now on
                replica.reset_probes(member, now)
                if (last := self._were_ready.get(replica.key)) is not None:
                    replica.keep_passing(member, last if member is replica.primary else {})
                if member is replica.primary:
                    await self._read_primary(replica, member)
            member.state = "running"
        elif row.state == "created":  # created, but the worker stopped before starting it
            await self._start(replica, member, now)
        elif row.state == "paused":
            member.state = "paused"
        else:  # exited, stopped, dead
            member.state = row.state
            if not member.down:
                member.down = True
                reason = await self._exit_reason(member)
                events.append(
                    _event(
                        "container_exited",
                        reason,
                        replica,
                        container=member.plan.name,
                        exit_code=member.exit_code,
                    )
                )
                self._schedule_restart(replica, reason, now, events)

    async def _exit_reason(self, member: Member) -> str:
        assert member.id is not None
        state = (await self._engine.inspect(member.id) or {}).get("State") or {}
        code, oom = state.get("ExitCode"), state.get("OOMKilled")
        member.exit_code = code if isinstance(code, int) else None
        logged = self._engine.log_lines(
            member.id, tail=REASON_LINES, max_line_bytes=REASON_LINE_BYTES
        )
        lines = last_lines([line.text async for line in logged])
        reason = f"container '{member.plan.name}' exited with code {code}"
        reason += " (out of memory)" if oom else ""
        return reason + (f"; last log lines: {lines}" if lines else "")

    def _schedule_restart(
        self, replica: Replica, reason: str, now: float, events: list[RuntimeEvent]
    ) -> None:
        replica.reason = reason
        if replica.restart_at is not None:
            return
        if replica.streak >= self._policy.crash_loop_limit:
            self._failed = replica.key
            self._failure = (
                f"{replica.name} restarted {replica.streak} times in a row without becoming "
                f"ready; last failure: {reason}"
            )
            events.append(_event("replica_crash_loop", self._failure, replica))
            return
        policy = self._policy
        delay = min(policy.backoff_initial_seconds * 2**replica.streak, policy.backoff_max_seconds)
        replica.restart_at = now + delay

    async def _restart(self, replica: Replica, now: float, events: list[RuntimeEvent]) -> None:
        replica.restart_at = None
        restarting = [m for m in replica.members if m.down or m.state != "running"]
        if replica.primary in restarting:
            # The primary's network namespace is new: sidecars must join it again.
            for member in replica.sidecars:
                if member not in restarting and member.id:
                    await self._engine.stop(member.id, 0)
                    self._seen(member, "exited")
                    restarting.append(member)
        for member in replica.members:
            if member in restarting:
                await self._start(replica, member, now)
        replica.restarts += 1
        replica.streak += 1
        events.append(
            _event(
                "replica_restarted",
                f"restarted {replica.name} (restart {replica.restarts}) after: {replica.reason}",
                replica,
                restarts=replica.restarts,
            )
        )

    async def _create(self, replica: Replica, member: Member, now: float) -> None:
        await self._engine.ensure_image(member.plan.image)  # the engine remembers it
        if not self._network_ready:  # the workload's own network, before its first container
            labels = workload_labels(self._plan.workload_id)
            await self._engine.ensure_network(network_name(self._plan.workload_id), labels)
            self._network_ready = True
        primary_id = None if member is replica.primary else replica.primary.id
        config = create_config(
            member.plan,
            member.key,
            replica.group,
            self._secrets,
            primary_id=primary_id,
            stop_grace_seconds=self._grace,
        )
        member.id = await finish_if_cancelled(self._engine.create(member.key.name, config))
        self._seen(member, "created")
        await self._start(replica, member, now)

    async def _start(self, replica: Replica, member: Member, now: float) -> None:
        assert member.id is not None
        # A primary with a probe that tells it runs: its inspect after the start is enough.
        probed = member.plan.startup_probe or member.plan.readiness_probe
        own = member is replica.primary and probed is not None
        if own:  # its event may come before `start` returns
            self._own_starts.add(member.id)
        try:
            await self._engine.start(member.id, member.key.name)
        except BaseException:
            self._own_starts.discard(member.id)
            raise
        member.state, member.down, member.exit_code = "started", False, None
        replica.reset_probes(member, now)
        info = await self._read_primary(replica, member) if member is replica.primary else {}
        if own and info:
            self._view[member.id] = inspected_summary(info)
        else:
            # Running only once the engine says so (its `start` event, then an inspect), or
            # a probe passes: a process that exits at once must not look ready for a moment.
            self._own_starts.discard(member.id)
            self._dirty.add(member.id)

    async def _read_primary(self, replica: Replica, member: Member) -> dict[str, Any]:
        """Host ports change on every start (Podman), and probes need them at once."""
        assert member.id is not None
        info = await self._engine.inspect(member.id) or {}
        replica.ports = inspected_ports(info)
        replica.started_at = parse_time(str((info.get("State") or {}).get("StartedAt", "")))
        return info

    async def _run_probes(self, events: list[RuntimeEvent]) -> None:
        for run in self._prober.collect():
            replica, member, tracker = run.replica, run.member, run.tracker
            transition = tracker.record(run.outcome, run.started)
            if transition is not None:
                kind = "probe_failed" if transition == "failed" else "probe_recovered"
                message = f"{tracker.kind} probe of '{tracker.container}': {run.outcome.message}"
                details = {"container": tracker.container, "probe": tracker.kind}
                events.append(_event(kind, message, replica, **details))
            failed = tracker.passing is False and tracker.kind in ("startup", "liveness")
            if failed and not member.down and member.id:
                await self._engine.stop(member.id, self._grace)
                self._seen(member, "exited")
                member.down = True
                self._schedule_restart(replica, tracker.describe, time.monotonic(), events)
        self._prober.start_due(self._replicas.values(), time.monotonic())

    def _evaluate(self, replica: Replica, now: float, events: list[RuntimeEvent]) -> None:
        ready = replica.evaluate_ready()
        if ready and not replica.ready:
            replica.ready_since, replica.reason = now, ""
            events.append(_event("replica_ready", f"{replica.name} is ready", replica))
        elif replica.ready and not ready:
            failing = [t for t in replica.trackers if t.passing is False]
            why = failing[0].describe if failing else replica.reason or "not running"
            replica.reason = why
            events.append(
                _event("replica_not_ready", f"{replica.name} is not ready: {why}", replica)
            )
        replica.ready = ready
        stable = (
            replica.ready_since is not None and now - replica.ready_since >= READY_STABLE_SECONDS
        )
        if ready and stable:
            replica.streak = 0
