"""Where the gateway sends traffic, held in memory.

A background task reloads one snapshot from the catalog twice a second: ready replica addresses
per workload, every workload id, each deployment's current workload and body limit, and the
running workloads scaled to zero (or starting from it), whose calls wait for a replica, and the
split of each rollout in progress (the candidate's weight), and of each workload being
replaced in place (the new version's weight). A
request finds its answer there with a dict lookup, and a swap reaches every gateway process
within a second. A miss (a deployment or a ready replica newer than the snapshot) reads that
one key from the catalog, so what a client has just been told exists or is running takes
traffic at once; the answer is kept until the next snapshot or for half a second. "No ready
replica" is kept only for NO_REPLICA_MEMORY: long enough for the calls that waited on that
lookup to read it, and a storm of calls to a stopped workload is at most a query per 50 ms,
but a workload the API has just reported running (a restart can take less than half a second)
is never answered 503 from a memory older than that. (Who may call is `credentials.py`'s job.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.gateway.ttl_cache import Missing, TtlCache
from catalog.tables import (
    Deployment,
    DeploymentRollout,
    Workload,
    WorkloadReplacement,
    WorkloadReplica,
)
from services.autoscaling import scales_to_zero

log = logging.getLogger(__name__)

NO_REPLICA_MEMORY = 0.05  # seconds


@dataclass(frozen=True, slots=True)
class Split:
    """A rollout in progress: `weight` percent of calls go to `candidate`."""

    rollout: str
    candidate: str
    weight: int


@dataclass(frozen=True, slots=True)
class Target:
    """Where a deployment routes now."""

    workload: str
    max_body_bytes: int | None  # None: the gateway's default
    split: Split | None = None


@dataclass(frozen=True)
class Routes:
    ready: dict[str, tuple[str, ...]] = field(default_factory=dict)  # workload -> addresses
    workloads: frozenset[str] = frozenset()
    deployments: dict[str, Target] = field(default_factory=dict)
    # Running workloads that may scale to zero and have no ready replica: a call waits for one.
    cold: frozenset[str] = frozenset()
    # Workloads being replaced in place: the new version takes `weight` percent of their calls.
    replacing: dict[str, Split] = field(default_factory=dict)


class ReplicaDirectory:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, interval: float = 0.5
    ) -> None:
        self.sessions = sessions
        self.interval = interval
        self.routes = Routes()
        self.loaded = False  # the first snapshot has been read
        self._task: asyncio.Task[None] | None = None
        self._ready: TtlCache[str, tuple[str, ...]] = TtlCache(
            self._load_ready,
            ttl=interval,
            ttl_of=lambda found: interval if found else min(interval, NO_REPLICA_MEMORY),
        )
        self._exists: TtlCache[str, bool] = TtlCache(self._load_exists, ttl=interval)
        self._targets: TtlCache[str, Target | None] = TtlCache(self._load_target, ttl=interval)
        self._zero: TtlCache[str, bool] = TtlCache(self._load_scales_to_zero, ttl=interval)

    # ---- the hot path: dict lookups ------------------------------------------------------

    def peek_ready(self, workload_id: str) -> tuple[str, ...] | Missing:
        found = self.routes.ready.get(workload_id)
        return found if found else self._ready.peek(workload_id)

    def peek_exists(self, workload_id: str) -> bool | Missing:
        return True if workload_id in self.routes.workloads else self._exists.peek(workload_id)

    def is_cold(self, workload_id: str) -> bool:
        return workload_id in self.routes.cold

    def peek_target(self, deployment_id: str) -> Target | Missing | None:
        found = self.routes.deployments.get(deployment_id)
        return found if found is not None else self._targets.peek(deployment_id)

    # ---- misses: one key from the catalog ------------------------------------------------

    async def addresses(self, workload_id: str) -> tuple[str, ...]:
        """Ready addresses, from the snapshot or, when it has none, from the catalog."""
        found = self.routes.ready.get(workload_id)
        return found if found else await self._ready.get(workload_id)

    async def exists(self, workload_id: str) -> bool:
        return workload_id in self.routes.workloads or await self._exists.get(workload_id)

    async def deployment_target(self, deployment_id: str) -> Target | None:
        """The route of a deployment, from the snapshot or, for a deployment newer than it,
        from the catalog. (A time-throttled reload here once answered 404 to the first call
        on a just-created deployment: the snapshot had been read before it.)"""
        found = self.routes.deployments.get(deployment_id)
        return found if found is not None else await self._targets.get(deployment_id)

    async def scales_to_zero(self, workload_id: str) -> bool:
        """Whether the workload's autoscaling may take it to zero (asked when every replica
        refused a connection: only then is it read)."""
        return workload_id in self.routes.cold or await self._zero.get(workload_id)

    async def _load_scales_to_zero(self, workload_id: str) -> bool:
        async with self.sessions() as session:
            runtime = await session.scalar(
                select(Workload.runtime).where(Workload.id == workload_id)
            )
        return scales_to_zero(runtime or {})

    async def _load_ready(self, workload_id: str) -> tuple[str, ...]:
        async with self.sessions() as session:
            rows = await session.execute(
                _ready_replicas().where(WorkloadReplica.workload_id == workload_id)
            )
            return tuple(address for _, address in rows if address)

    async def _load_exists(self, workload_id: str) -> bool:
        async with self.sessions() as session:
            found = await session.scalar(select(Workload.id).where(Workload.id == workload_id))
        return found is not None

    async def _load_target(self, deployment_id: str) -> Target | None:
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(Deployment.workload_id, Deployment.max_body_bytes).where(
                        Deployment.id == deployment_id
                    )
                )
            ).first()
            splits = await _splits(session, deployment_id) if row else {}
        return Target(row[0], row[1], splits.get(deployment_id)) if row else None

    # ---- the snapshot ----------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="replica-directory")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> None:
        async with self.sessions() as session:
            rows = await session.execute(_ready_replicas())
            ready: dict[str, list[str]] = defaultdict(list)
            for workload_id, address in rows:
                if address:
                    ready[workload_id].append(address)
            workloads = frozenset(await session.scalars(select(Workload.id)))
            splits = await _splits(session)
            deployments = {
                deployment_id: Target(workload_id, max_body_bytes, splits.get(deployment_id))
                for deployment_id, workload_id, max_body_bytes in await session.execute(
                    select(Deployment.id, Deployment.workload_id, Deployment.max_body_bytes)
                )
            }
            waiting = await session.execute(
                select(Workload.id, Workload.runtime).where(
                    Workload.status == "running",
                    ~exists().where(
                        WorkloadReplica.workload_id == Workload.id,
                        WorkloadReplica.ready.is_(True),
                    ),
                )
            )
            cold = frozenset(id_ for id_, runtime in waiting if scales_to_zero(runtime or {}))
            replacing = await _replacement_splits(session)
        # One assignment: a request sees the old table or the new one, never a mix. Answers
        # read for misses are older than this snapshot, so they go.
        self.routes = Routes(
            {w: tuple(a) for w, a in ready.items()}, workloads, deployments, cold, replacing
        )
        for cache in (self._ready, self._exists, self._targets, self._zero):
            cache.clear()
        self.loaded = True

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as error:  # keep serving the last table while the catalog is away
                log.warning("could not refresh the route table", extra={"error": str(error)})
            await asyncio.sleep(self.interval)


async def _splits(session: AsyncSession, deployment_id: str | None = None) -> dict[str, Split]:
    """The rollouts whose candidate takes calls now (a rollout's completion moves the
    deployment itself, in the same transaction that ends the split)."""
    statement = select(
        DeploymentRollout.deployment_id,
        DeploymentRollout.id,
        DeploymentRollout.candidate_workload_id,
        DeploymentRollout.weight,
    ).where(DeploymentRollout.status.in_(("progressing", "paused")), DeploymentRollout.weight > 0)
    if deployment_id is not None:
        statement = statement.where(DeploymentRollout.deployment_id == deployment_id)
    return {
        deployment: Split(rollout, candidate, weight)
        for deployment, rollout, candidate, weight in await session.execute(statement)
    }


async def _replacement_splits(session: AsyncSession) -> dict[str, Split]:
    """The in-place replacements whose new version takes calls now (an errored one whose
    workload did not restart keeps its weight: the new version keeps serving)."""
    rows = await session.execute(
        select(
            WorkloadReplacement.workload_id,
            WorkloadReplacement.id,
            WorkloadReplacement.candidate_workload_id,
            WorkloadReplacement.weight,
        ).where(
            WorkloadReplacement.status.in_(("progressing", "finalizing", "errored")),
            WorkloadReplacement.weight > 0,
        )
    )
    return {
        workload: Split(replacement, candidate, weight)
        for workload, replacement, candidate, weight in rows
    }


def _ready_replicas() -> Select[str, str | None]:
    return (
        select(WorkloadReplica.workload_id, WorkloadReplica.address)
        .where(WorkloadReplica.ready.is_(True), WorkloadReplica.address.is_not(None))
        # The entry group's replicas take traffic; ordered so they come first.
        .order_by(WorkloadReplica.group_name, WorkloadReplica.replica_index)
    )
