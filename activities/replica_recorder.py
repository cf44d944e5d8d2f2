"""Write what a runtime observes to the catalog, only when it changed.

Probes run every period; the catalog hears about a replica only when its state, readiness,
restarts or a probe's verdict (or message) changes, so an idle workload writes nothing. A
probe result's `checkedAt` is therefore when that result was last recorded.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog.tables import WorkloadReplica, utcnow
from runtimes.base import Observation, ReplicaStatus, RuntimeEvent
from services import workloads

Key = tuple[str, int]


def _signature(replica: ReplicaStatus) -> tuple[Any, ...]:
    probes = tuple(sorted((kind, r.ok, r.message) for kind, r in replica.probes.items()))
    return (
        replica.generation,
        replica.name,
        replica.state,
        replica.ready,
        replica.restarts,
        replica.started_at,
        replica.address,
        replica.message,
        probes,
    )


class ReplicaRecorder:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], workload_id: str) -> None:
        self.sessions = sessions
        self.workload_id = workload_id
        self._written: dict[Key, tuple[Any, ...]] = {}
        self._first = True

    async def previous(self) -> list[ReplicaStatus]:
        """The last status the catalog holds (restart counts survive a worker restart)."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(WorkloadReplica).where(WorkloadReplica.workload_id == self.workload_id)
            )
            return [
                ReplicaStatus(
                    group=row.group_name,
                    index=row.replica_index,
                    generation=row.generation,
                    name=row.name,
                    state=row.state,
                    ready=row.ready,
                    restarts=row.restarts,
                    started_at=row.started_at,
                    address=row.address,
                    probes=row.probes,
                    message=row.message,
                )
                for row in rows
            ]

    async def store(
        self,
        observation: Observation,
        extra: list[RuntimeEvent] | None = None,
        *,
        running: int | None = None,
    ) -> bool:
        """Write what changed since the last call, with the observation's events and `extra`;
        with `running`, that generation's `running` status too (True if the catalog has it)."""
        seen = {(r.group, r.index): r for r in observation.replicas}
        changed = [
            replica
            for key, replica in seen.items()
            if self._written.get(key) != _signature(replica)
        ]
        gone = [key for key in self._written if key not in seen]
        events = [*(extra or []), *observation.events]
        if not (changed or gone or events or self._first or running is not None):
            return False
        recorded = False
        async with self.sessions() as session, session.begin():
            if self._first:
                # Rows of replicas that no longer exist (older generations, scaled away).
                await session.execute(
                    delete(WorkloadReplica).where(WorkloadReplica.workload_id == self.workload_id)
                )
            for group, index in gone:
                await session.execute(
                    delete(WorkloadReplica).where(
                        WorkloadReplica.workload_id == self.workload_id,
                        WorkloadReplica.group_name == group,
                        WorkloadReplica.replica_index == index,
                    )
                )
            if self._first:  # every row was deleted above
                session.add_all(self._row(replica) for replica in seen.values())
            else:
                for replica in changed:
                    await session.merge(self._row(replica))
            for event in events:
                await workloads.add_event(
                    session,
                    self.workload_id,
                    event.type,
                    event.message,
                    "runtime",
                    event.details,
                    at=event.at,
                )
            if running is not None:
                recorded = await workloads.record_running(
                    session, self.workload_id, running, "all replicas are ready"
                )
        self._first = False
        for key in gone:
            self._written.pop(key, None)
        for key, replica in seen.items():
            self._written[key] = _signature(replica)
        return recorded

    def _row(self, replica: ReplicaStatus) -> WorkloadReplica:
        return WorkloadReplica(
            workload_id=self.workload_id,
            group_name=replica.group,
            replica_index=replica.index,
            generation=replica.generation,
            name=replica.name,
            state=replica.state,
            ready=replica.ready,
            restarts=replica.restarts,
            started_at=replica.started_at,
            address=replica.address,
            probes={kind: r.model_dump(mode="json") for kind, r in replica.probes.items()},
            message=replica.message,
            updated_at=utcnow(),
        )
