"""The supervise activity when the engine is away: a retryable error, and an event saying so
on the first attempt and every tenth (not on every retry). The runtime is the real local
runtime, pointed at a socket where no engine listens. And when one tick takes long (an image
pull, a slow probe): the activity keeps heartbeating."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.supervision import SupervisionActivities
from catalog import database
from catalog.tables import WorkloadEvent
from config.settings import Settings
from models.plan import ContainerPlan, GroupPlan, RunPlan
from runtimes.base import Observation, ReplicaStatus, RuntimeEvent
from runtimes.errors import RuntimeUnavailableError
from runtimes.local import LocalRuntime
from services import workloads
from services.keyring import load_keyring
from tests.factories import inline_workload
from tests.support.ports import free_port
from workflows.workload_contract import SuperviseInput


def plan_for(workload_id: str) -> RunPlan:
    return RunPlan(
        workload_id=workload_id,
        generation=1,
        groups=[
            GroupPlan(
                name="default",
                replicas=1,
                containers=[ContainerPlan(name="main", image="busybox", primary=True, port=8080)],
            )
        ],
    )


@pytest.mark.parametrize(("attempt", "events"), [(1, 1), (2, 0), (10, 1)])
async def test_unreachable_engine_is_retried_and_reported(
    catalog_engine: AsyncEngine, tmp_path: Path, attempt: int, events: int
) -> None:
    sessions = database.create_sessionmaker(catalog_engine)
    async with sessions() as session, session.begin():
        created = await inline_workload(session)
    runtime = LocalRuntime(f"unix://{tmp_path / 'no-engine.sock'}")
    activities = SupervisionActivities(
        sessions, runtime, load_keyring(Settings(state_dir=tmp_path))
    )
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    try:
        with pytest.raises(RuntimeUnavailableError):
            await env.run(
                activities.supervise, SuperviseInput(plan=plan_for(created.id), wait_for_ready=True)
            )
    finally:
        await runtime.close()
    async with sessions() as session:
        rows = list(
            await session.scalars(
                select(WorkloadEvent).where(WorkloadEvent.type == "runtime_unavailable")
            )
        )
    assert len(rows) == events
    if rows:
        assert "unreachable; retrying" in rows[0].message and rows[0].details["attempt"] == attempt


class SlowSupervisor:
    """One tick that takes 2.5 s and reports a failure, so the activity returns after it."""

    async def tick(self) -> Observation:
        await asyncio.sleep(2.5)
        return Observation(replicas=[], failure="gave up")

    async def close(self) -> None:
        return None


class SlowRuntime:
    name = "slow"

    def supervisor(
        self, plan: RunPlan, secrets: Mapping[str, str], previous: list[ReplicaStatus]
    ) -> SlowSupervisor:
        return SlowSupervisor()


async def test_a_long_tick_keeps_heartbeating(catalog_engine: AsyncEngine, tmp_path: Path) -> None:
    activities = SupervisionActivities(
        database.create_sessionmaker(catalog_engine),
        cast(Any, SlowRuntime()),
        load_keyring(Settings(state_dir=tmp_path)),
    )
    beats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    result = await env.run(
        activities.supervise, SuperviseInput(plan=plan_for("w"), wait_for_ready=True)
    )
    assert result.outcome == "failed"
    assert len(beats) >= 2, "no heartbeat while the tick ran"


async def test_an_image_pull_counts_against_the_ready_timeout(
    catalog_engine: AsyncEngine, tmp_path: Path, docker_url: str
) -> None:
    """A registry that never answers (on loopback) holds the pull; the workload fails when its
    ready timeout is up, saying why, instead of waiting for the pull."""
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", free_port())
    port = server.sockets[0].getsockname()[1]
    stuck = plan_for("w")
    stuck.groups[0].containers[0].image = f"127.0.0.1:{port}/never/answers:1"
    runtime = LocalRuntime(docker_url)
    activities = SupervisionActivities(
        database.create_sessionmaker(catalog_engine),
        runtime,
        load_keyring(Settings(state_dir=tmp_path)),
        ready_timeout=timedelta(seconds=3),
    )
    env = ActivityEnvironment()
    try:
        began = time.monotonic()
        result = await env.run(
            activities.supervise, SuperviseInput(plan=stuck, wait_for_ready=True)
        )
        took = time.monotonic() - began
    finally:
        await runtime.close()
        for writer in held:
            writer.close()
        server.close()
    assert result.outcome == "failed"
    assert "pulling images counts against the ready timeout" in (result.reason or "")
    assert held, "the engine never tried the registry"
    assert took < 60  # generous: the point is that it ends near 3 s, not when the pull does


async def _workload_at(sessions: async_sessionmaker[AsyncSession], *statuses: str) -> str:
    """A new workload whose generation 1 went through `statuses` (each recorded once)."""
    async with sessions() as session, session.begin():
        created = await inline_workload(session)
    for status in dict.fromkeys(statuses):
        async with sessions() as session, session.begin():
            await workloads.record_status(
                session,
                created.id,
                status=cast(Any, status),
                generation=1,
                reason=None,
                event=status,
                message=status,
                actor="system",
            )
    return created.id


class ReadySupervisor:
    """Every replica of the plan ready at the first tick."""

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan

    async def tick(self) -> Observation:
        replica = ReplicaStatus(
            group="default", index=0, generation=self.plan.generation, name="r0", state="running"
        )
        return Observation(replicas=[replica.model_copy(update={"ready": True})])

    async def close(self) -> None:
        return None


class ReadyRuntime:
    name = "ready"

    def supervisor(
        self, plan: RunPlan, secrets: Mapping[str, str], previous: list[ReplicaStatus]
    ) -> ReadySupervisor:
        return ReadySupervisor(plan)


@pytest.mark.parametrize(
    ("before", "recorded", "after"),
    [
        ("initializing", True, "running"),
        ("running", True, "running"),  # a retried supervision: already written
        ("stopping", False, "stopping"),  # a stop the workflow recorded first stays
    ],
)
async def test_ready_replicas_and_running_are_written_together(
    catalog_engine: AsyncEngine, tmp_path: Path, before: str, recorded: bool, after: str
) -> None:
    """A starting supervision writes `running` beside the ready replicas (the workflow then
    records nothing), only over `initializing` of its generation, with one event."""
    sessions = database.create_sessionmaker(catalog_engine)
    workload_id = await _workload_at(sessions, "initializing", before)
    activities = SupervisionActivities(
        sessions, cast(Any, ReadyRuntime()), load_keyring(Settings(state_dir=tmp_path))
    )
    result = await ActivityEnvironment().run(
        activities.supervise, SuperviseInput(plan=plan_for(workload_id), wait_for_ready=True)
    )
    assert (result.outcome, result.running_recorded) == ("ready", recorded)
    async with sessions() as session:
        workload = await workloads.get_workload(session, workload_id)
        types = list(
            await session.scalars(
                select(WorkloadEvent.type)
                .where(WorkloadEvent.workload_id == workload_id)
                .order_by(WorkloadEvent.id)
            )
        )
    assert workload.status == after
    assert types.count("running") == (1 if after == "running" else 0)
    if before == "initializing":  # in the supervision's own transaction, after its events
        assert types[-2:] == ["supervision_started", "running"]


async def test_a_late_initializing_record_does_not_undo_running(
    catalog_engine: AsyncEngine,
) -> None:
    """The workflow may record an event under `initializing` (a worker found after a wait)
    while its supervision writes `running`: the status stays `running`."""
    sessions = database.create_sessionmaker(catalog_engine)
    async with sessions() as session, session.begin():
        created = await inline_workload(session)

    async def initializing(event: str, generation: int = 1) -> str:
        async with sessions() as session, session.begin():
            await workloads.record_status(
                session,
                created.id,
                status="initializing",
                generation=generation,
                reason=None,
                event=event,
                message=event,
                actor="system",
            )
        async with sessions() as session:
            return (await workloads.get_workload(session, created.id)).status

    assert await initializing("starting") == "initializing"
    async with sessions() as session, session.begin():
        assert await workloads.record_running(session, created.id, 1, "all replicas are ready")
    assert await initializing("supervision_resumed") == "running"
    assert await initializing("starting", generation=2) == "initializing"  # a new generation


class StartingSupervisor:
    """Started at the first tick, ready at the second, `probe_after` seconds later."""

    def __init__(self, plan: RunPlan, probe_after: float) -> None:
        self.plan, self.probe_after, self.ticks = plan, probe_after, 0
        self.woken_at = float("inf")

    async def tick(self) -> Observation:
        self.ticks += 1
        if self.ticks == 1:
            self.woken_at = time.monotonic() + self.probe_after
        ready = self.ticks > 1 and time.monotonic() >= self.woken_at
        replica = ReplicaStatus(
            group="default",
            index=0,
            generation=self.plan.generation,
            name="r0",
            state="running",
            ready=ready,
        )
        kind = "replica_ready" if ready else "replica_started"
        said = ready or self.ticks == 1
        return Observation(
            replicas=[replica], events=[RuntimeEvent(type=kind, message=kind)] if said else []
        )

    async def wait(self, at_most: float) -> bool:
        left = self.woken_at - time.monotonic()
        await asyncio.sleep(max(min(left, at_most), 0))
        return left <= at_most

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(("probe_after", "stores"), [(0.02, 1), (0.4, 2)])
async def test_a_start_and_a_quick_ready_are_written_in_one_transaction(
    catalog_engine: AsyncEngine, tmp_path: Path, probe_after: float, stores: int
) -> None:
    """While starting, a tick is stored with the next one if that comes within
    STORE_COALESCE_SECONDS; events keep the time they were seen."""
    sessions = database.create_sessionmaker(catalog_engine)
    created = await _workload_at(sessions, "initializing")
    plan = plan_for(created)
    supervisor = StartingSupervisor(plan, probe_after)
    runtime = SimpleNamespace(name="starting", supervisor=lambda *_: supervisor)
    commits: list[object] = []

    def committed(connection: object) -> None:
        commits.append(connection)

    event.listen(catalog_engine.sync_engine, "commit", committed)
    activities = SupervisionActivities(
        sessions, cast(Any, runtime), load_keyring(Settings(state_dir=tmp_path))
    )
    result = await ActivityEnvironment().run(
        activities.supervise, SuperviseInput(plan=plan, wait_for_ready=True)
    )
    event.remove(catalog_engine.sync_engine, "commit", committed)
    assert (result.outcome, result.running_recorded) == ("ready", True)
    assert len(commits) == stores
    async with sessions() as session:
        rows = list(
            await session.scalars(
                select(WorkloadEvent)
                .where(WorkloadEvent.workload_id == created)
                .order_by(WorkloadEvent.id)
            )
        )
    kinds = [row.type for row in rows if row.actor == "runtime" or row.type == "running"]
    assert kinds == ["supervision_started", "replica_started", "replica_ready", "running"]
    seen = {row.type: row.created_at for row in rows}
    waited = (seen["replica_ready"] - seen["replica_started"]).total_seconds()
    assert waited >= probe_after * 0.9, "the events lost the time they were seen"
