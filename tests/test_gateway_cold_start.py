"""The gateway in front of a workload scaled to zero, on a real catalog and real upstream
sockets: calls are held (and published as held demand for the autoscaler) until a replica is
ready, then forwarded; past the cold-start timeout they get 503 with Retry-After. (Replicas are
made ready here by writing the catalog, as the supervisor does; the autoscaler and the
containers are tests/e2e/test_autoscaling.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from catalog.tables import Workload
from services import demand
from tests.support.gateway_world import World, echo_upstream, sqlite_world

pytestmark = pytest.mark.timeout(60)
AT_ZERO = {
    "containerGroups": [
        {
            "name": "default",
            "replicaCount": 0,
            "autoscaling": {
                "enabled": True,
                "minReplicaCount": 0,
                "maxReplicaCount": 2,
                "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 10}],
            },
        }
    ]
}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with sqlite_world(tmp_path) as built:
        async with built.sessions() as session, session.begin():
            await session.execute(
                update(Workload)
                .where(Workload.id == built.workloads["empty"])
                .values(status="running", runtime=AT_ZERO)
            )
        yield built


def headers(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.admin}"}


async def load_of(world: World, workload_id: str) -> demand.Load | None:
    async with world.sessions() as session:
        return (await demand.read(session)).get(workload_id)


async def held(world: World, workload_id: str, at_least: int) -> None:
    for _ in range(100):
        load = await load_of(world, workload_id)
        if load is not None and load.held >= at_least:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{at_least} held calls never published")


async def test_calls_at_zero_wait_for_a_replica_then_all_go_to_it(world: World) -> None:
    workload_id = world.workloads["empty"]
    async with (
        echo_upstream() as address,
        world.gateway() as gw,
        httpx.AsyncClient(base_url=gw.url, timeout=30) as client,
    ):
        calls = [
            asyncio.create_task(
                client.get(world.path("workloads", "empty", "/x"), headers=headers(world))
            )
            for _ in range(5)
        ]
        calls.append(
            asyncio.create_task(
                client.get(world.path("deployments", "empty", "/y"), headers=headers(world))
            )
        )
        await held(world, workload_id, 6)  # published at once, for the autoscaler
        assert not any(call.done() for call in calls)
        await world.serve(empty=[address])  # the replica is ready
        answers = await asyncio.gather(*calls)
        assert [a.status_code for a in answers] == [200] * 6
        assert answers[0].json()["line"].startswith("GET /x ")
        assert answers[-1].json()["line"].startswith("GET /y ")
        for _ in range(40):  # released: no call is held any more
            load = await load_of(world, workload_id)
            if load is None or load.held == 0:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("held calls still published after they were answered")


async def test_past_the_cold_start_timeout_503_with_retry_after(world: World) -> None:
    async with (
        world.gateway(gateway_cold_start_timeout_seconds=1) as gw,
        httpx.AsyncClient(base_url=gw.url, timeout=30) as client,
    ):
        answer = await client.get(world.path("workloads", "empty"), headers=headers(world))
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert "scaled to zero" in answer.json()["message"]


async def test_a_workload_that_cannot_scale_to_zero_is_refused_at_once(world: World) -> None:
    # w2 is running in no sense here and has no replica: 503 at once, as before.
    async with (
        world.gateway(gateway_cold_start_timeout_seconds=30) as gw,
        httpx.AsyncClient(base_url=gw.url, timeout=30) as client,
    ):
        answer = await asyncio.wait_for(
            client.get(world.path("workloads", "w2"), headers=headers(world)), 10
        )
    assert answer.status_code == 503
    assert "no ready replica" in answer.json()["message"]
