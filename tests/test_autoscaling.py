"""Autoscaling below the real containers: the request rules, the load the gateways publish, the
autoscaler's loop on a real catalog, and what the scaling endpoint shows. (The whole path on
real containers and Temporal is tests/e2e/test_autoscaling.py; the decisions are
tests/test_kpa.py.)"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.gateway.demand import Demand
from api.presenters.workloads import present_scaling
from catalog import database
from catalog.tables import Artifact, GatewayDemand, Workload, WorkloadEvent
from config.settings import Settings
from services import decider_lock, demand
from services.autoscaler import Autoscaler
from services.autoscaling import scales_to_zero
from services.demand import DemandReport
from services.lifecycle import WorkloadLifecycle
from services.refs import WorkloadRef
from tests.factories import ready_replica, spec
from workflows.workload_contract import TransitionResult

WORKLOADS = "/api/v2/console/workloads/"
ZERO = {
    "enabled": True,
    "minReplicaCount": 0,
    "maxReplicaCount": 3,
    "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 2}],
}


def locs(response: httpx.Response) -> list[tuple[Any, ...]]:
    return [tuple(d["loc"]) for d in response.json()["detail"]]


async def create(api: httpx.AsyncClient, runtime: dict[str, Any]) -> httpx.Response:
    body = {"name": "svc", "artifact": {"spec": spec()}, "runtime": runtime}
    return await api.post(WORKLOADS, json=body)


async def test_a_fixed_count_of_zero_is_refused_naming_the_field(api: httpx.AsyncClient) -> None:
    grouped = await create(api, {"containerGroups": [{"replicaCount": 0}]})
    assert grouped.status_code == 422
    assert locs(grouped) == [("body", "runtime", "containerGroups", 0, "replicaCount")]
    assert "minReplicaCount 0" in grouped.json()["detail"][0]["msg"]
    flat = await create(api, {"replicaCount": 0})
    assert flat.status_code == 422
    assert locs(flat) == [("body", "runtime", "replicaCount")]
    disabled = await create(
        api, {"containerGroups": [{"replicaCount": 0, "autoscaling": {**ZERO, "enabled": False}}]}
    )
    assert disabled.status_code == 422


async def test_unknown_metrics_and_exclusive_fields(api: httpx.AsyncClient) -> None:
    bad_metric = {**ZERO, "policies": [{"scalingMetric": "requestsPerSecond", "target": 1}]}
    metric = await create(api, {"autoscaling": bad_metric})
    assert metric.status_code == 422
    assert locs(metric) == [("body", "runtime", "autoscaling", "policies", 0, "scalingMetric")]
    both = await create(api, {"replicaCount": 2, "autoscaling": ZERO})
    assert both.status_code == 422
    assert ("body", "runtime", "containerGroups", 0, "replicaCount") in locs(both) or (
        "body",
        "runtime",
        "replicaCount",
    ) in locs(both)


def test_which_runtimes_scale_to_zero() -> None:
    assert scales_to_zero({"containerGroups": [{"autoscaling": ZERO}]})
    assert not scales_to_zero({"containerGroups": [{"autoscaling": {**ZERO, "enabled": False}}]})
    assert not scales_to_zero(
        {"containerGroups": [{"autoscaling": {**ZERO, "minReplicaCount": 1}}]}
    )
    assert not scales_to_zero({"containerGroups": [{"replicaCount": 1}]})
    assert not scales_to_zero({})


async def test_demand_adds_fresh_reports_and_ignores_stale_ones(
    catalog_engine: AsyncEngine,
) -> None:
    sessions = database.create_sessionmaker(catalog_engine)
    now = time.time()
    async with sessions() as session, session.begin():
        await demand.write(session, "a", DemandReport(now, {"w1": 1.5, "w2": 2.0}, {"w2": 2}))
        await demand.write(session, "b", DemandReport(now - 1, {"w1": 0.5}, {}))
        await demand.write(session, "old", DemandReport(now - 30, {"w1": 100.0}, {"w1": 9}))
        await demand.write(session, "gone", DemandReport(now - 90, {"w1": 100.0}, {}))
    async with sessions() as session:
        loads = await demand.read(session, now)
    assert loads.reporters == 2  # a stale report is a process that stopped: ignored
    assert loads["w1"].in_flight == 2.0 and loads["w1"].held == 0
    assert loads["w2"].in_flight == 2.0 and loads["w2"].held == 2
    async with sessions() as session, session.begin():
        await demand.write(session, "a", DemandReport(now, {"w1": 1.0}, {}))  # rewritten whole
        await demand.forget(session, "b")
        await demand.forget_stale(session, now)  # only "gone" is old enough to delete
    async with sessions() as session:
        loads = await demand.read(session, now)
        reporters = set(await session.scalars(select(GatewayDemand.reporter)))
    assert "w2" not in loads and loads["w1"].in_flight == 1.0
    assert reporters == {"a", "old"}


async def test_a_gateway_process_publishes_the_average_in_flight(
    catalog_engine: AsyncEngine,
) -> None:
    sessions = database.create_sessionmaker(catalog_engine)

    async def read() -> demand.Loads:
        async with sessions() as session:
            return await demand.read(session)

    published = Demand(sessions)
    published.add("w")
    published.add("w")
    published._sample()  # two in flight
    published.remove("w")
    published._sample()  # one
    assert published.changed()
    await published.publish()
    assert (await read())["w"].in_flight == 1.5
    published._sample()
    assert published.changed()  # one in flight since
    await published.publish()
    published._sample()
    published._sample()
    assert not published.changed()  # still one: only a heartbeat would write it again
    await published.publish()
    # A held call counts in full at once, whatever the average since the last write.
    published.remove("w")
    published.hold("cold")
    published._sample()
    await published.publish()
    loads = await read()
    assert loads["cold"].held == 1 and loads["cold"].in_flight == 1.0
    assert "w" not in loads  # no call in flight since the last write
    published.release("cold")
    assert published.in_flight == {} and published.held == {}
    await published.stop()  # the row goes with the process
    assert (await read()).reporters == 0


class RecordingLifecycle(WorkloadLifecycle):
    """The Updates the autoscaler sends, recorded instead of sent (the path through Temporal
    is tested on a real server in tests/e2e/test_autoscaling.py)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, int], str | None]] = []

    async def scale(
        self, ref: WorkloadRef, actor: str, replicas: dict[str, int], reason: str | None = None
    ) -> TransitionResult:
        self.sent.append((ref.id, actor, replicas, reason))
        return TransitionResult(status="running", generation=1)


async def add_workload(
    engine: AsyncEngine,
    workload_id: str,
    replicas: int,
    scaling: dict[str, Any],
    group: str = "default",
) -> None:
    sessions = database.create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        session.add(
            Artifact(
                id=f"a{workload_id}",
                name="a",
                type="generic",
                status="draft",
                spec=spec(),
                created_by="t",
            )
        )
        await session.flush()
        session.add(
            Workload(
                id=workload_id,
                name="w",
                artifact_id=f"a{workload_id}",
                status="running",
                runtime={
                    "containerGroups": [
                        {"name": group, "replicaCount": replicas, "autoscaling": scaling}
                    ]
                },
                created_by="t",
            )
        )
        await session.flush()
        if replicas:
            session.add(ready_replica(workload_id, "127.0.0.1:1"))


def reported(**loads: demand.Load) -> demand.Loads:
    """Loads as one gateway process reported them."""
    found = demand.Loads(loads)
    found.reporters = 1
    return found


async def test_without_any_gateway_report_nothing_is_decided(
    catalog_engine: AsyncEngine, tmp_path: Path
) -> None:
    settings = Settings(state_dir=tmp_path, autoscaler_idle_seconds=0)
    lifecycle = RecordingLifecycle()
    autoscaler = Autoscaler(settings, database.create_sessionmaker(catalog_engine), lifecycle)
    await add_workload(catalog_engine, "unseen", 2, ZERO)
    for second in range(120):  # two minutes of no report: no load known, no change
        await autoscaler.tick(float(second), demand.Loads())
    assert lifecycle.sent == []


async def test_the_loop_sends_only_changes_with_their_reason(
    catalog_engine: AsyncEngine, tmp_path: Path
) -> None:
    settings = Settings(state_dir=tmp_path, autoscaler_idle_seconds=0)
    lifecycle = RecordingLifecycle()
    autoscaler = Autoscaler(settings, database.create_sessionmaker(catalog_engine), lifecycle)
    busy = {**ZERO, "minReplicaCount": 1}
    await add_workload(catalog_engine, "busy", 1, busy)
    await add_workload(catalog_engine, "steady", 1, busy)
    await add_workload(catalog_engine, "off", 1, {**busy, "enabled": False})
    loads = reported(busy=demand.Load(in_flight=5.0))
    await autoscaler.tick(100.0, loads)
    assert lifecycle.sent == [
        (
            "busy",
            "autoscaler",
            {"default": 3},
            # Three times what one replica holds, at once: a panic.
            "panic: 5.00 calls in flight over the last 6 s, target 2 per replica, 1 ready",
        )
    ]
    assert set(autoscaler.scalers) == {("busy", "default"), ("steady", "default")}
    # `steady` has no load and its minimum is 1: nothing is sent for it, tick after tick.
    lifecycle.sent.clear()
    await autoscaler.tick(101.0, reported())
    assert all(sent[0] != "steady" for sent in lifecycle.sent)


async def test_the_loop_takes_an_idle_group_to_zero_and_back(
    catalog_engine: AsyncEngine, tmp_path: Path
) -> None:
    settings = Settings(state_dir=tmp_path, autoscaler_idle_seconds=5)
    lifecycle = RecordingLifecycle()
    autoscaler = Autoscaler(settings, database.create_sessionmaker(catalog_engine), lifecycle)
    await add_workload(catalog_engine, "idle", 1, ZERO)
    for second in range(5):
        await autoscaler.tick(float(second), reported())
    assert lifecycle.sent == []  # not idle for 5 s yet
    await autoscaler.tick(5.5, reported())
    assert lifecycle.sent == [
        ("idle", "autoscaler", {"default": 0}, "no calls for 5 s: scale to zero")
    ]
    assert autoscaler.at_zero == {"idle"}


def test_rules_come_from_the_first_policy_by_priority_and_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path, autoscaler_stable_window_seconds=30, autoscaler_idle_seconds=7
    )
    sessions = database.create_sessionmaker(database.create_engine("sqlite+aiosqlite://"))
    autoscaler = Autoscaler(settings, sessions, RecordingLifecycle())
    group = {
        "autoscaling": {
            "enabled": True,
            "minReplicaCount": 0,
            "maxReplicaCount": 4,
            "policies": [
                {"scalingMetric": "cpuAverageUtilization", "target": 70, "priority": 2},
                {"scalingMetric": "httpRequestsConcurrency", "target": 5, "priority": 1},
            ],
        }
    }
    rules = autoscaler.rules_of(group)
    assert rules is not None
    assert (rules.metric, rules.target, rules.min_replicas, rules.max_replicas) == (
        "httpRequestsConcurrency",
        5.0,
        0,
        4,
    )
    assert (rules.stable_window, rules.panic_window, rules.idle_before_zero) == (30, 3, 7)
    assert autoscaler.rules_of({"replicaCount": 2}) is None


def test_the_scaling_view_shows_desired_ready_and_the_latest_reason() -> None:
    workload = Workload(
        id="w",
        status="running",
        runtime={"containerGroups": [{"name": "default", "replicaCount": 0, "autoscaling": ZERO}]},
    )
    at = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        WorkloadEvent(
            type="scaled",
            actor="autoscaler",
            details={"replicas": "{'default': 0}", "reason": "no calls for 30 s: scale to zero"},
            created_at=at,
        ),
        WorkloadEvent(
            type="scaled", actor="admin", details={"replicas": "{'other': 2}"}, created_at=at
        ),
    ]
    shown = present_scaling(workload, [], events).model_dump(by_alias=True)
    group = shown["groups"][0]
    assert (group["desiredReplicas"], group["readyReplicas"], group["reportedReplicas"]) == (
        0,
        0,
        0,
    )
    assert group["lastDecision"]["reason"] == "no calls for 30 s: scale to zero"
    assert group["lastDecision"]["actor"] == "autoscaler"
    assert group["autoscaling"]["minReplicaCount"] == 0


async def test_the_decisions_are_on_the_api_metrics(api: httpx.AsyncClient) -> None:
    scrape = await api.get("/metrics")
    assert scrape.status_code == 200
    assert 'wapi_autoscaler_decisions_total{cause="cold_start",direction="up"} 0.0' in scrape.text
    assert re.search(r"^wapi_autoscaler_deciding [01]\.0$", scrape.text, re.M), scrape.text


async def test_one_decider_per_catalog_and_the_lock_passes_on(
    catalog_url: str, tmp_path: Path
) -> None:
    """Two API processes (each its own engine, as on two hosts): one holds the lock; released,
    the other takes it. SQLite: a file lock beside the database; PostgreSQL: an advisory lock."""
    engines = [database.create_engine(catalog_url) for _ in range(2)]
    try:
        locks = [decider_lock.for_catalog(e, tmp_path / f"state{i}") for i, e in enumerate(engines)]
        assert await locks[0].try_acquire()
        assert not await locks[1].try_acquire()
        assert await locks[0].still_held() and not await locks[1].still_held()
        await locks[0].release()
        assert await locks[1].try_acquire()
        assert not await locks[0].try_acquire()
        await locks[1].release()
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_held_call_wakes_the_one_deciding_process(
    catalog_url: str, catalog_engine: AsyncEngine, tmp_path: Path
) -> None:
    """Two autoscalers on one catalog with a gateway's publisher: only the one holding the lock
    decides; a call held at zero reaches it through the catalog and it starts a replica at
    once (no tick: the tick here is a minute); when it stops, the other one takes over."""
    await add_workload(catalog_engine, "cold", 0, ZERO)
    settings = Settings(state_dir=tmp_path, autoscaler_tick_seconds=60)
    engines = [database.create_engine(catalog_url) for _ in range(2)]
    lifecycles = [RecordingLifecycle(), RecordingLifecycle()]
    autoscalers = [
        Autoscaler(settings, database.create_sessionmaker(e), life,
                   lock=decider_lock.for_catalog(e, tmp_path / f"state{i}"))
        for i, (e, life) in enumerate(zip(engines, lifecycles, strict=True))
    ]  # fmt: skip
    gateway = Demand(database.create_sessionmaker(catalog_engine))

    async def until(check: Any, what: str, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while not check():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.05)

    try:
        autoscalers[0].start()
        await until(lambda: autoscalers[0].deciding, "the first to start decides")
        autoscalers[1].start()
        gateway.start()
        await until(lambda: autoscalers[0].at_zero == {"cold"}, "the first tick")
        gateway.hold("cold")
        await until(lambda: lifecycles[0].sent, "the held call wakes the decider")
        [(workload, _, replicas, reason)] = lifecycles[0].sent
        assert (workload, replicas) == ("cold", {"default": 1})
        assert reason is not None and reason.startswith("calls waiting at zero replicas")
        assert not autoscalers[1].deciding and lifecycles[1].sent == []
        await autoscalers[0].stop()
        await until(lambda: autoscalers[1].deciding, "the other takes over")
    finally:
        await gateway.stop()
        for autoscaler in autoscalers:
            await autoscaler.stop()
        for engine in engines:
            await engine.dispose()
