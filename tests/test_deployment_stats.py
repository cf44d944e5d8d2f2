"""`GET /console/deployments/{id}/stats/`: the gateway processes' per-minute traffic rows and
the monitor's checks per bucket, on both catalogs. (Real traffic through real gateways:
tests/test_public_clients.py, item 7.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from catalog.tables import HealthCheck
from models.deployments import DeploymentCreate
from services import deployments, traffic
from services.traffic import MinuteOf, Traffic
from tests.factories import ADMIN, registered_workload

# Mid-minute (no bucket edge near it) and always in the past: a call "now" must fall inside
# a period that ends at the time of the request.
NOW = (datetime.now(UTC) - timedelta(minutes=1)).replace(second=30, microsecond=0)


def minute(deployment_id: str, at: datetime, *calls: tuple[int, float]) -> MinuteOf:
    counts = Traffic()
    for status, latency_ms in calls:
        counts.add_call(status, latency_ms / 1000)
    return MinuteOf(deployment_id, at.replace(second=0, microsecond=0), counts)


async def deployment_with_traffic(app: FastAPI) -> str:
    async with app.state.context.sessions() as session, session.begin():
        workload = await registered_workload(session)
        deployment = await deployments.create_deployment(
            session, DeploymentCreate(name="prod", workload_id=workload.id), ADMIN
        )
        other = await deployments.create_deployment(
            session,
            DeploymentCreate(name="other", workload_id=(await registered_workload(session)).id),
            ADMIN,
        )
        five_ago = NOW - timedelta(minutes=5)
        # Two gateway processes counted calls in the same minute: their rows add up.
        await traffic.save(
            session,
            "process-1",
            [
                minute(deployment.id, five_ago, (200, 10)),
                minute(deployment.id, NOW, (404, 4)),
                minute(deployment.id, NOW - timedelta(hours=2), (200, 1)),  # outside the hour
                minute(other.id, NOW, (200, 1)),  # another deployment
            ],
        )
        await traffic.save(session, "process-2", [minute(deployment.id, five_ago, (503, 30))])
        for ok in (True, True, False):
            session.add(HealthCheck(deployment_id=deployment.id, checked_at=five_ago, ok=ok))
    return deployment.id


async def test_calls_and_checks_land_in_their_minute(app: FastAPI, api: httpx.AsyncClient) -> None:
    deployment_id = await deployment_with_traffic(app)
    end = (NOW + timedelta(seconds=10)).isoformat()
    response = await api.get(
        f"/api/v2/console/deployments/{deployment_id}/stats/", params={"endTime": end}
    )
    assert response.status_code == 200, response.text
    stats = response.json()
    buckets = stats["buckets"]
    assert len(buckets) == 61  # an hour of minutes; the first starts on a whole minute
    assert buckets[0]["start"].endswith(":00Z")
    by_start = {datetime.fromisoformat(b["start"]): b for b in buckets if b["totalRequests"]}
    minute = NOW.replace(second=0)
    assert set(by_start) == {minute - timedelta(minutes=5), minute}
    earlier = by_start[minute - timedelta(minutes=5)]
    assert (earlier["totalRequests"], earlier["serverErrors"], earlier["userErrors"]) == (2, 1, 0)
    assert (earlier["responseTimeAvg"], earlier["responseTimeMax"]) == (20.0, 30.0)
    assert (earlier["healthChecks"], earlier["healthChecksOk"]) == (3, 2)
    assert by_start[minute]["userErrors"] == 1
    summary = stats["summary"]
    assert summary["totalRequests"] == 3
    assert summary["serverErrors"] == 1
    assert summary["responseTimeMax"] == 30.0
    assert summary["responseTimeAvg"] == round(44 / 3, 2)
    assert summary["errorRate"] == round(2 / 3, 4)
    # Percentiles within 1% of the calls' latencies (4, 10 and 30 ms).
    for name, expected in (("P50", 10), ("P90", 30), ("P99", 30)):
        assert abs(summary[f"responseTime{name}"] - expected) <= expected * 0.01, name
    assert abs(earlier["responseTimeP50"] - 10) <= 0.1
    assert summary["availability"] == round(2 / 3, 4)


async def test_a_minute_written_again_replaces_the_process_row(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    deployment_id = await deployment_with_traffic(app)
    async with app.state.context.sessions() as session, session.begin():
        calls = [(200, 10), (200, 12), (200, 14)]  # process-1's whole minute so far
        await traffic.save(session, "process-1", [minute(deployment_id, NOW, *calls)])
    end = (NOW + timedelta(seconds=10)).isoformat()
    url = f"/api/v2/console/deployments/{deployment_id}/stats/"
    summary = (await api.get(url, params={"endTime": end})).json()["summary"]
    assert summary["totalRequests"] == 2 + 3  # the 404 row was replaced


async def test_coarser_buckets_and_bad_periods(app: FastAPI, api: httpx.AsyncClient) -> None:
    deployment_id = await deployment_with_traffic(app)
    url = f"/api/v2/console/deployments/{deployment_id}/stats/"
    hourly = (await api.get(url, params={"resolution": "PT1H"})).json()
    assert sum(b["totalRequests"] for b in hourly["buckets"]) == 3
    assert len(hourly["buckets"]) in (1, 2)

    backwards = await api.get(
        url, params={"startTime": NOW.isoformat(), "endTime": (NOW - timedelta(1)).isoformat()}
    )
    assert backwards.status_code == 422
    assert backwards.json()["detail"][0]["loc"] == ["query", "startTime"]
    too_many = await api.get(url, params={"startTime": (NOW - timedelta(days=3)).isoformat()})
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["query", "resolution"]
    missing = await api.get("/api/v2/console/deployments/nope/stats/")
    assert missing.status_code == 404


async def test_times_far_from_now_are_answered(app: FastAPI, api: httpx.AsyncClient) -> None:
    """Found by the stateful fuzz run: on PostgreSQL, an `endTime` in the year 389 put a
    bucket origin outside a 32-bit integer and answered 500."""
    deployment_id = await deployment_with_traffic(app)
    url = f"/api/v2/console/deployments/{deployment_id}/stats/"
    for end in ("0389-04-09T17:19:11-16:33", "9999-12-31T22:00:00+00:00"):
        answer = await api.get(url, params={"endTime": end, "resolution": "PT1M"})
        assert answer.status_code == 200, answer.text
        assert sum(b["totalRequests"] for b in answer.json()["buckets"]) == 0
