"""`begin_generation`, the one local activity on the way to a new generation's containers:
`initializing` recorded and the plan prepared in one transaction, on a real catalog."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment

from activities.workload_catalog import WorkloadCatalogActivities
from catalog import database
from catalog.tables import Workload, WorkloadEvent
from services import workloads
from services.bundles import BundleCatalog
from services.limits import Limits
from tests.factories import inline_workload
from workflows.workload_contract import RecordStatusInput


def starting(workload_id: str) -> RecordStatusInput:
    return RecordStatusInput(
        workload_id=workload_id,
        status="initializing",
        generation=1,
        actor="alice",
        event="starting",
        message="starting generation 1",
    )


@pytest.mark.parametrize("allowed", [True, False])
async def test_initializing_is_recorded_with_the_plan_or_why_there_is_none(
    catalog_engine: AsyncEngine, allowed: bool
) -> None:
    sessions = database.create_sessionmaker(catalog_engine)
    async with sessions() as session, session.begin():
        created = await inline_workload(session)
    # The allow-list may change after the artifact was written: the plan then refuses it.
    registries = ("registry.example.com",) if allowed else ("elsewhere.example.com",)
    activities = WorkloadCatalogActivities(
        sessions, BundleCatalog.load(), Limits(registries=registries)
    )
    result = await ActivityEnvironment().run(activities.begin_generation, starting(created.id))
    assert result.exists
    if allowed:
        assert result.plan is not None and result.failure is None
        assert (result.plan.workload_id, result.plan.generation) == (created.id, 1)
        assert result.plan.groups[0].containers[0].image == "registry.example.com/team/app:1"
    else:
        assert result.plan is None
        assert result.failure is not None and "not from an allowed registry" in result.failure
    async with sessions() as session:
        workload = await workloads.get_workload(session, created.id)
        types = list(
            await session.scalars(
                select(WorkloadEvent.type).where(WorkloadEvent.workload_id == created.id)
            )
        )
    assert (workload.status, workload.generation) == ("initializing", 1)  # recorded either way
    assert types.count("starting") == 1


async def test_a_workload_deleted_meanwhile_is_reported_gone(catalog_engine: AsyncEngine) -> None:
    sessions = database.create_sessionmaker(catalog_engine)
    async with sessions() as session, session.begin():
        created = await inline_workload(session)
    async with sessions() as session, session.begin():
        await workloads.forget_workload(session, created.id)
    activities = WorkloadCatalogActivities(sessions, BundleCatalog.load())
    result = await ActivityEnvironment().run(activities.begin_generation, starting(created.id))
    assert (result.exists, result.plan) == (False, None)
    async with sessions() as session:
        assert await session.scalar(select(Workload.id).where(Workload.id == created.id)) is None
