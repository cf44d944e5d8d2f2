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
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment

from activities.supervision import SupervisionActivities
from catalog import database
from catalog.tables import WorkloadEvent
from config.settings import Settings
from models.plan import ContainerPlan, GroupPlan, RunPlan
from models.workloads import InlineArtifact, WorkloadCreate
from runtimes.base import Observation, ReplicaStatus
from runtimes.errors import RuntimeUnavailableError
from runtimes.local import LocalRuntime
from services import workloads
from services.bundles import BundleCatalog
from services.keyring import load_keyring
from tests.factories import ADMIN, spec
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
        created = await workloads.create_workload(
            session,
            WorkloadCreate(name="w", artifact=InlineArtifact.model_validate({"spec": spec()})),
            ADMIN,
            BundleCatalog.load(),
        )
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

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
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
