"""`GET /console/deployments/{id}/stats/`: the gateway's calls and the monitor's checks per
bucket, on both catalogs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from catalog.tables import HealthCheck
from models.audit import AuditEntry
from models.deployments import DeploymentCreate
from services import audit, deployments
from tests.factories import ADMIN, registered_workload

NOW = datetime.now(UTC).replace(second=30, microsecond=0)


def call(deployment_id: str, at: datetime, status: int, latency_ms: float) -> AuditEntry:
    return AuditEntry(
        at=at,
        actor="alice",
        action="deployment.invoke",
        resource_type="deployment",
        resource_id=deployment_id,
        status_code=status,
        latency_ms=latency_ms,
    )


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
        await audit.append(
            session,
            [
                call(deployment.id, five_ago, 200, 10),
                call(deployment.id, five_ago + timedelta(seconds=5), 503, 30),
                call(deployment.id, NOW, 404, 4),
                call(deployment.id, NOW - timedelta(hours=2), 200, 1),  # outside the hour
                call(other.id, NOW, 200, 1),  # another deployment
            ],
        )
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
    assert summary["availability"] == round(2 / 3, 4)


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
