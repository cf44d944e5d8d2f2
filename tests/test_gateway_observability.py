"""What the gateway tells about the calls it serves: metrics (merged across processes, deployment
ids only to those allowed to see them), an audit record for every deployment call, its own
health endpoints, and serving known callers while the catalog is away."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from api.gateway.metrics import GatewayMetrics
from catalog import database
from catalog.tables import AuditEvent
from services import audit
from tests.support.gateway_world import World, echo_upstream, sqlite_world

pytestmark = pytest.mark.timeout(60)
METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with sqlite_world(
        tmp_path_factory.mktemp("gateway-observability"), metrics_token=METRICS_TOKEN
    ) as built:
        yield built


def bearer(secret: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"} if secret else {}


async def invoke_records(world: World, since_seq: int) -> list[AuditEvent]:
    async with world.sessions() as session:
        rows = await session.scalars(
            select(AuditEvent).where(AuditEvent.seq > since_seq).order_by(AuditEvent.seq)
        )
        return list(rows)


async def head_seq(world: World) -> int:
    async with world.sessions() as session:
        return int(
            await session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
            or 0
        )


async def test_every_call_is_audited_refused_ones_too(world: World) -> None:
    before = await head_seq(world)
    async with (
        echo_upstream() as address,
        world.gateway(w1=[address]) as gw,
        httpx.AsyncClient(base_url=gw.url) as client,
    ):
        for _ in range(2):
            answer = await client.get(world.path(rest="/a?secret=1"), headers=bearer(world.token))
            assert answer.status_code == 200
        # The id with its last character percent-encoded: the same deployment, audited as such.
        encoded = world.path(rest="/a").replace(
            world.d1, f"{world.d1[:-1]}%{ord(world.d1[-1]):02X}"
        )
        assert (await client.get(encoded, headers=bearer(world.token))).status_code == 200
        assert (await client.get(world.path(), headers=bearer(world.token2))).status_code == 403
        assert (await client.get(world.path(name="nope"))).status_code == 401
        # alice is user of d1, so user of the workload behind it.
        ok = await client.get(world.path("workloads", "w1"), headers=bearer(world.alice))
        assert ok.status_code == 200
        for _ in range(40):
            rows = await invoke_records(world, before)
            if sum(row.summary["count"] for row in rows) >= 6:
                break
            await asyncio.sleep(0.1)
    by_kind_status = {(row.action, row.status_code or 0): row for row in rows}
    assert sorted(by_kind_status) == [
        ("deployment.invoke", 200),
        ("deployment.invoke", 401),
        ("deployment.invoke", 403),
        ("workload.invoke", 200),
    ]
    assert len(rows) == 4
    served = by_kind_status[("deployment.invoke", 200)]
    assert (served.resource_id, served.actor_kind) == (world.d1, "invoke_token")
    assert served.actor.startswith("token:") and served.source_ip == "127.0.0.1"
    assert served.summary["count"] == 3 and served.summary["method"] == "GET"
    assert served.summary["columns"] == ["offsetUs", "requestId", "path", "latencyUs"]
    assert [call[2] for call in served.summary["calls"]] == ["/a"] * 3  # never the query
    request_ids = [call[1] for call in served.summary["calls"]]
    assert served.request_id == request_ids[0] and len(set(request_ids)) == 3
    unknown = by_kind_status[("deployment.invoke", 401)]
    assert (unknown.actor, unknown.resource_id) == ("anonymous", "nope")
    # A refused caller who is known is named: here the other deployment's token.
    refused = by_kind_status[("deployment.invoke", 403)]
    assert refused.actor.startswith("token:") and refused.actor != served.actor
    workload_call = by_kind_status[("workload.invoke", 200)]
    assert (workload_call.actor, workload_call.resource_id) == ("alice", world.workloads["w1"])
    async with world.sessions() as session:
        assert (await audit.verify(session)).valid
    assert gw.gateway.metrics.audit["recorded"] == 6


async def test_metrics_show_deployment_ids_only_to_those_allowed(world: World) -> None:
    async with (
        echo_upstream() as address,
        world.gateway(w1=[address]) as gw,
        httpx.AsyncClient(base_url=gw.url) as client,
    ):
        await client.get(world.path(), headers=bearer(world.token))
        await client.get(world.path(name="made-up-id"), headers=bearer(world.admin))  # 404
        for who in (None, world.bob, "wapi_not-a-key", "nonsense"):
            text = (await client.get("/metrics", headers=bearer(who))).text
            assert 'wapi_gateway_requests_total{kind="deployment",status_class="2xx"} 1.0' in text
            assert world.d1 not in text and "made-up-id" not in text, who
        for who in (world.admin, METRICS_TOKEN):
            text = (await client.get("/metrics", headers=bearer(who))).text
            line = (
                f'wapi_deployment_requests_total{{deployment="{world.d1}",status_class="2xx"}} 1.0'
            )
            assert line in text
            assert f'wapi_deployment_requests_in_flight{{deployment="{world.d1}"}} 0.0' in text
            # Ids of deployments that do not exist are never a label.
            assert "made-up-id" not in text


def test_metrics_add_up_across_processes(tmp_path: Path) -> None:
    """Each process saves its counters; a scrape adds its own live ones to the others'. A
    process that has exited keeps its counters in the sum but not its gauges."""
    mine = GatewayMetrics(tmp_path)
    mine.started("deployment", "d1")
    mine.finished("deployment", "d1", 200, 0.002, started=True)
    mine.started("deployment", "d1")  # still in flight
    other = GatewayMetrics(tmp_path)
    other.started("deployment", None)  # in flight in the other process
    other.finished("deployment", None, 401, 0.001, started=False)
    other.count(other.failures, "refused")
    other.connections["client"] = 7
    alive, gone = os.getppid(), 2**22 + 12345
    for pid in (alive, gone):
        (tmp_path / f"{pid}.json").write_text(json.dumps(other.snapshot()))
    merged = mine.merged()
    assert merged["failures"] == {"refused": 2}
    assert merged["connections"]["client"] == 7  # the live process's only
    text = mine.exposition(per_deployment=True).decode()
    assert 'wapi_gateway_requests_total{kind="deployment",status_class="2xx"} 1.0' in text
    assert 'wapi_gateway_requests_total{kind="deployment",status_class="4xx"} 2.0' in text
    assert 'wapi_gateway_requests_in_flight{kind="deployment"} 2.0' in text  # not the gone one's
    bucket = 'wapi_deployment_request_duration_seconds_bucket{deployment="d1",le="0.0025"} 1.0'
    assert bucket in text and 'wapi_deployment_requests_in_flight{deployment="d1"} 1.0' in text
    assert "d1" not in mine.exposition(per_deployment=False).decode()


async def test_health_endpoints(world: World) -> None:
    async with world.gateway() as gw, httpx.AsyncClient(base_url=gw.url) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200 and health.json()["process"] == os.getpid()
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        assert (await client.post("/healthz")).status_code == 404
        assert (await client.get("/api/v2/console/workloads/")).json()["code"] == "not_found"


async def test_known_callers_are_served_while_the_catalog_is_away(world: World) -> None:
    """Route table and credentials keep their last answers: the gateway stays up. A caller
    it has never seen gets 503 `catalog_unavailable`, not an error."""
    async with (
        echo_upstream() as address,
        world.gateway(w1=[address]) as gw,
        httpx.AsyncClient(base_url=gw.url) as client,
    ):
        access = gw.gateway.access
        assert (await client.get(world.path(), headers=bearer(world.token))).status_code == 200
        nowhere = database.create_engine("postgresql+asyncpg://wapi:x@127.0.0.1:1/catalog")
        unreachable = database.create_read_sessionmaker(nowhere)
        saved = access.directory.sessions, access.credentials.sessions, access.sessions
        try:
            access.directory.sessions = access.credentials.sessions = access.sessions = unreachable
            await asyncio.sleep(1.1)  # past the caches' half second and a route reload
            for _ in range(3):
                answer = await client.get(world.path(), headers=bearer(world.token))
                assert answer.status_code == 200
            stranger = await client.get(world.path(), headers=bearer(world.alice))
            assert stranger.status_code == 503
            assert (
                stranger.json()["code"] == "catalog_unavailable" and stranger.headers["retry-after"]
            )
        finally:
            access.directory.sessions, access.credentials.sessions, access.sessions = saved
            await nowhere.dispose()
