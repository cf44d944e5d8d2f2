"""The local supervisor: a kubelet for one generation of one workload on a Docker-API engine.

Each tick lists the workload's containers once (one cheap call), removes what the plan does
not include, creates or adopts what is missing, restarts what stopped (with backoff), runs
the probes that are due, and reports. Containers are inspected only when they change.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from models.plan import RunPlan
from runtimes.base import Observation, ReplicaStatus, RestartPolicy, RuntimeEvent
from runtimes.local.containers import LABEL_NETWORK_OF, LABEL_ROLE, create_config
from runtimes.local.engine import ContainerSummary, Engine, inspected_ports
from runtimes.local.logstream import parse_time
from runtimes.local.naming import ContainerKey, ReplicaKey, network_name, workload_labels
from runtimes.local.prober import Prober
from runtimes.local.replica import Member, Replica

# A replica must stay ready this long before its crash-loop count starts again, so a process
# that answers for a moment and then dies still counts as crash-looping.
READY_STABLE_SECONDS = 2.0
EXIT_LOG_LINES = 5

Details = dict[str, str | int | float | bool | None]


def _event(kind: str, message: str, replica: Replica, **details: str | int | None) -> RuntimeEvent:
    base: Details = {"replica": replica.name, "group": replica.group.name}
    return RuntimeEvent(type=kind, message=message, details=base | details)


class LocalSupervisor:
    """Brings one `RunPlan` about and keeps it so; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
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
        for status in previous:  # restart counts survive a worker restart
            seen = ReplicaKey(plan.workload_id, status.generation, status.group, status.index)
            if replica := self._replicas.get(seen):
                replica.restarts = status.restarts
        self._members: set[ContainerKey] = {
            m.key for r in self._replicas.values() for m in r.members
        }
        self._images: set[str] = set()
        self._network_ready = False
        self._failure: str | None = None
        self._failed: ReplicaKey | None = None
        self._prober = Prober(engine, probe_host)

    async def close(self) -> None:
        await self._prober.close()

    async def tick(self) -> Observation:
        """One reconcile-probe-report step (see the module docstring).

        Raises:
            RuntimeUnavailableError: the engine did not answer (retry later).
            ImageNotFoundError, StartFailedError: the plan cannot run at all.
        """
        events: list[RuntimeEvent] = []
        if self._failure is None:  # after a crash loop, only report
            rows = await self._engine.list_containers(self._plan.workload_id)
            await self._remove_strays(rows, events)
            current = {row.key: row for row in rows if row.key and row.key in self._members}
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

    async def _remove_strays(
        self, rows: list[ContainerSummary], events: list[RuntimeEvent]
    ) -> None:
        strays = [row for row in rows if row.key not in self._members]
        # Sidecars first: Podman will not remove a container whose network others share.
        for row in sorted(strays, key=lambda row: row.labels.get(LABEL_ROLE) == "primary"):
            await self._engine.remove(row.id)
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
                    await self._engine.remove(row.id)
            for member in replica.members:
                await self._create(replica, member, now)
            events.append(_event("replica_created", f"created {replica.name}", replica))
            events.append(_event("replica_started", f"started {replica.name}", replica))
            return
        for member in replica.members:
            row = current.get(member.key)
            network_of = current[primary.key].id
            if row and member is not primary and row.labels.get(LABEL_NETWORK_OF) != network_of:
                await self._engine.remove(row.id)
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
        lines = [line.text async for line in self._engine.log_lines(member.id, tail=EXIT_LOG_LINES)]
        reason = f"container '{member.plan.name}' exited with code {code}"
        reason += " (out of memory)" if oom else ""
        return reason + ("; last log lines: " + " | ".join(lines) if lines else "")

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
        if member.plan.image not in self._images:
            await self._engine.ensure_image(member.plan.image)
            self._images.add(member.plan.image)
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
        member.id = await self._engine.create(member.key.name, config)
        await self._start(replica, member, now)

    async def _start(self, replica: Replica, member: Member, now: float) -> None:
        assert member.id is not None
        await self._engine.start(member.id, member.key.name)
        member.state, member.down, member.exit_code = "started", False, None
        replica.reset_probes(member, now)
        if member is replica.primary:
            await self._read_primary(replica, member)

    async def _read_primary(self, replica: Replica, member: Member) -> None:
        """Host ports change on every start (Podman), and probes need them at once."""
        assert member.id is not None
        info = await self._engine.inspect(member.id) or {}
        replica.ports = inspected_ports(info)
        replica.started_at = parse_time(str((info.get("State") or {}).get("StartedAt", "")))

    async def _run_probes(self, events: list[RuntimeEvent]) -> None:
        now = time.monotonic()
        for run in await self._prober.run_due(self._replicas.values(), now):
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
                member.down = True
                self._schedule_restart(replica, tracker.describe, time.monotonic(), events)

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
