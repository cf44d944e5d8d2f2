"""The autoscaler: one loop, in one API process, deciding the replica count of every
autoscaled container group and applying each change through the workload's workflow.

Every tick (`WAPI_AUTOSCALER_TICK_SECONDS`) it reads the load the gateway processes publish in
the catalog (`services/demand.py`), the autoscaled groups of running workloads and their ready
replicas, feeds one sample per group to its `GroupScaler` (`services/kpa.py`) and,
where the recommendation differs from the stored count, sends the workload's `scale` Update
(the path `PATCH` of a replica count takes), with the reason; the workflow's `record_scale`
writes the count and a `scaled` event naming it. Nothing is sent while nothing changes, so an
autoscaled workload under steady load adds nothing to its workflow history.

Between ticks it reads the published load ten times a second: a call held by a gateway for a
workload at zero replicas makes it decide at once, so a cold start waits for no tick.

Only one process decides, across API replicas and hosts: the one holding the catalog's decider
lock (`services/decider_lock.py`); the others try for it every `LOCK_RETRY` seconds (see
docs/architecture.md for why the decider lives here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog import database
from catalog.tables import Workload, WorkloadReplica
from config.settings import Settings
from runtimes.base import Runtime
from services import demand
from services.decider_lock import DeciderLock, FileLock
from services.demand import Loads
from services.errors import DomainError
from services.kpa import GroupScaler, ScalingRules
from services.lifecycle import WorkloadLifecycle
from services.refs import WorkloadRef

log = logging.getLogger(__name__)

ACTOR = "autoscaler"
WAKE_POLL = 0.1  # how often held calls are looked for between ticks, while a group is at zero
LOCK_RETRY = 5.0  # a process that does not decide tries for the lock this often
LOCK_CHECK = 5.0  # the deciding process checks it still holds the lock this often
SWEEP_EVERY = 60.0  # the decider deletes the rows of gateway processes long gone
SERIES = (("up", "stable"), ("up", "panic"), ("up", "cold_start"), ("down", "stable"),
          ("down", "idle"))  # fmt: skip


@dataclass(frozen=True)
class ScaledGroup:
    """An autoscaled group of a running workload, as the catalog has it now."""

    workload_id: str
    group: str
    rules: ScalingRules
    desired: int  # the stored count: the last decision
    ready: int


class Autoscaler:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        lifecycle: WorkloadLifecycle,
        registry: CollectorRegistry | None = None,
        runtime: Runtime | None = None,
        lock: DeciderLock | None = None,
    ) -> None:
        self.settings = settings
        self.lock = lock or FileLock(settings.state_dir / "autoscaler.lock")
        self.sessions = sessions
        self.reads = database.create_read_sessionmaker(sessions.kw["bind"])
        self.lifecycle = lifecycle
        self.runtime = runtime  # for CPU figures; None: CPU policies keep their count
        self.scalers: dict[tuple[str, str], GroupScaler] = {}
        self.decisions: Counter[tuple[str, str]] = Counter()  # (direction, cause) -> changes
        self._registry = registry
        self.deciding = False  # this process holds the decider lock
        self._collector = _DecisionsCollector(self)
        self.at_zero: set[str] = set()  # workloads with a group at zero, as of the last tick
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="autoscaler")
        if self._registry is not None:
            self._registry.register(self._collector)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._registry is not None:
            self._registry.unregister(self._collector)
        await self.lock.release()
        self.deciding = False

    async def _run(self) -> None:
        while True:
            try:
                got = await self.lock.try_acquire()
            except Exception as error:  # the catalog away: try again later
                log.warning("autoscaler lock not taken", extra={"error": str(error)})
                got = False
            if got:
                log.info("this process runs the autoscaler", extra={"pid": os.getpid()})
                self.deciding = True
                try:
                    await self._decide()
                finally:
                    self.deciding = False
                    self.scalers.clear()  # the next decider starts from the catalog
                log.warning("this process lost the autoscaler lock", extra={"pid": os.getpid()})
            await asyncio.sleep(LOCK_RETRY)

    async def _decide(self) -> None:
        """Decide until the lock is lost."""
        tick = self.settings.autoscaler_tick_seconds
        next_tick = next_check = next_sweep = 0.0
        failure = ""
        while True:
            now = time.monotonic()
            if now >= next_check:
                next_check = now + LOCK_CHECK
                if not await self.lock.still_held():
                    return
            # Between ticks the demand is read only while some workload is at zero (a held call
            # there must wake the decider); otherwise once a tick is enough.
            if now < next_tick and not self.at_zero:
                await asyncio.sleep(WAKE_POLL)
                continue
            try:
                async with self.reads() as session:  # on SQLite, no write lock 10 times a second
                    loads = await demand.read(session)
                if now >= next_sweep:
                    next_sweep = now + SWEEP_EVERY
                    async with self.sessions() as session, session.begin():
                        await demand.forget_stale(session)
                woken = any(loads[w].held for w in self.at_zero if w in loads)
                if now >= next_tick or woken:
                    next_tick = now + tick
                    await self.tick(now, loads)
                    failure = ""
            except Exception as error:  # the next tick tries again; a bug must not stop scaling
                if repr(error) != failure:  # once per failure, not once a second
                    log.exception("autoscaler tick failed; retrying every tick")
                failure = repr(error)
            await asyncio.sleep(WAKE_POLL)

    async def tick(self, now: float, loads: Loads) -> None:
        """One sample per autoscaled group, one decision each, the changes applied."""
        groups = await self.scaled_groups()
        changes: dict[str, dict[str, int]] = {}
        reasons: dict[str, list[str]] = {}
        seen: set[tuple[str, str]] = set()
        at_zero: set[str] = set()
        cpu: dict[str, dict[str, float]] = {}  # this tick's CPU figures, by workload
        for group in groups:
            key = (group.workload_id, group.group)
            seen.add(key)
            scaler = self.scalers.get(key)
            if scaler is None or scaler.rules != group.rules:
                scaler = self.scalers[key] = GroupScaler(group.rules)
            if group.rules.metric == "cpuAverageUtilization":
                used = (await self._cpu(group.workload_id, cpu)).get(group.group)
                if used is not None:
                    scaler.observe(now, used)
            elif loads.reporters:  # with no gateway reporting, the load is unknown, not 0
                load = loads.get(group.workload_id)
                scaler.observe(now, load.in_flight if load else 0.0)
            found = scaler.recommend(now, ready=group.ready, current=group.desired)
            if found.replicas != group.desired:
                changes.setdefault(group.workload_id, {})[group.group] = found.replicas
                reasons.setdefault(group.workload_id, []).append(
                    f"{group.group}: {group.desired} -> {found.replicas}, {found.reason}"
                    if sum(g.workload_id == group.workload_id for g in groups) > 1
                    else found.reason
                )
                direction = "up" if found.replicas > group.desired else "down"
                self.decisions[(direction, found.cause)] += 1
            if (changes.get(group.workload_id) or {}).get(group.group, group.desired) == 0:
                at_zero.add(group.workload_id)
        for key in set(self.scalers) - seen:  # stopped, deleted, or no longer autoscaled
            del self.scalers[key]
        self.at_zero = at_zero
        await asyncio.gather(
            *(self._apply(w, replicas, "; ".join(reasons[w])) for w, replicas in changes.items())
        )

    async def _cpu(self, workload_id: str, read: dict[str, dict[str, float]]) -> dict[str, float]:
        """The workload's CPU use per group from the engine (once per tick); {} if unknown."""
        if workload_id not in read:
            read[workload_id] = {}
            if self.runtime is not None:
                try:
                    read[workload_id] = await self.runtime.cpu_utilization(workload_id)
                except Exception as error:  # the engine away: no sample this tick
                    log.warning(
                        "no CPU figures", extra={"workload": workload_id, "error": str(error)}
                    )
        return read[workload_id]

    async def _apply(self, workload_id: str, replicas: dict[str, int], reason: str) -> None:
        try:
            await self.lifecycle.scale(
                WorkloadRef(workload_id, "running"), ACTOR, replicas, reason=reason
            )
        except DomainError as error:  # stopped or deleted meanwhile, or Temporal away
            log.warning(
                "autoscaler change not applied",
                extra={"workload": workload_id, "error": error.message},
            )
            # Nothing changed: the next tick decides again from the catalog.
        else:
            log.info(
                "autoscaled",
                extra={"workload": workload_id, "replicas": replicas, "reason": reason},
            )

    async def scaled_groups(self) -> list[ScaledGroup]:
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(Workload.id, Workload.runtime).where(Workload.status == "running")
                )
            ).all()
            ready_rows = await session.execute(
                select(WorkloadReplica.workload_id, WorkloadReplica.group_name, func.count())
                .where(WorkloadReplica.ready.is_(True))
                .group_by(WorkloadReplica.workload_id, WorkloadReplica.group_name)
            )
            ready = {(w, g): count for w, g, count in ready_rows}
        found: list[ScaledGroup] = []
        for workload_id, runtime in rows:
            for group in (runtime or {}).get("containerGroups") or []:
                rules = self.rules_of(group)
                if rules is not None:
                    name = group.get("name", "default")
                    found.append(
                        ScaledGroup(
                            workload_id,
                            name,
                            rules,
                            int(group.get("replicaCount", 1)),
                            ready.get((workload_id, name), 0),
                        )
                    )
        return found

    def rules_of(self, group: dict[str, Any]) -> ScalingRules | None:
        """The rules of a stored group's autoscaling (its first policy by priority), if on."""
        scaling = group.get("autoscaling") or {}
        policies = scaling.get("policies") or []
        if not scaling.get("enabled") or not policies or scaling.get("maxReplicaCount") is None:
            return None
        policy = min(
            policies,
            key=lambda p: (p.get("priority") is None, p.get("priority") or 0),
        )
        s = self.settings
        stable = s.autoscaler_stable_window_seconds
        return ScalingRules(
            target=float(policy["target"]),
            min_replicas=int(scaling.get("minReplicaCount") or 0),
            max_replicas=int(scaling["maxReplicaCount"]),
            stable_window=stable,
            panic_window=max(stable * s.autoscaler_panic_window_percent / 100, 1.0),
            panic_threshold=s.autoscaler_panic_threshold,
            max_scale_up_rate=s.autoscaler_max_scale_up_rate,
            max_scale_down_rate=s.autoscaler_max_scale_down_rate,
            scale_down_delay=s.autoscaler_scale_down_delay_seconds,
            idle_before_zero=s.autoscaler_idle_seconds,
            metric=str(policy.get("scalingMetric") or "httpRequestsConcurrency"),
        )


class _DecisionsCollector(Collector):
    """The changes this process sent (only a deciding process has any), and whether it decides."""

    def __init__(self, autoscaler: Autoscaler) -> None:
        self.autoscaler = autoscaler

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "wapi_autoscaler_deciding",
            "1 in the one API process that runs the autoscaler (holds the decider lock), else 0.",
            value=1 if self.autoscaler.deciding else 0,
        )
        decisions = self.autoscaler.decisions
        family = CounterMetricFamily(
            "wapi_autoscaler_decisions",
            "Replica count changes the autoscaler sent, by direction and cause (stable, panic, "
            "idle: to zero, cold_start: from zero).",
            labels=["direction", "cause"],
        )
        # Every series from the start, so that a rate over it has data before the first change.
        for direction, cause in (*SERIES, *(k for k in sorted(decisions) if k not in SERIES)):
            family.add_metric([direction, cause], decisions[(direction, cause)])
        yield family
