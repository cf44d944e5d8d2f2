"""`/console/deployments/{id}/stats/`: requests, errors and latency as the gateway measured
them, and the monitor's health checks, per time bucket.

Every gateway call leaves an audit record with its status and latency (written in batches, so
a call shows up here about a second later), and each gateway process writes its own: the
figures cover every process. Health checks are the monitor's, of which the newest 500 per
deployment are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import Integer, Row, cast, extract, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from api.deps import SessionDep, Viewer
from api.params import DeploymentId
from catalog.tables import AuditEvent, HealthCheck
from models.stats import (
    RESOLUTIONS,
    DeploymentStats,
    Resolution,
    StatsBucket,
    StatsPeriod,
    StatsSummary,
)
from services import access
from services.errors import InvalidInputError

router = APIRouter(prefix="/console/deployments", tags=["deployments"])
MAX_BUCKETS = 1440
DEFAULT_WINDOW = timedelta(hours=1)


@router.get("/{deploymentId}/stats/", summary="A deployment's statistics over time")
async def deployment_stats(
    session: SessionDep,
    principal: Viewer,
    deployment_id: DeploymentId,
    start_time: Annotated[
        datetime | None,
        Query(alias="startTime", description="Default: an hour before `endTime`."),
    ] = None,
    end_time: Annotated[
        datetime | None, Query(alias="endTime", description="Default: now.")
    ] = None,
    resolution: Annotated[Resolution, Query(description="The width of a bucket.")] = "PT1M",
) -> DeploymentStats:
    """Calls through the deployment's gateway route (count, 4xx and 5xx, mean and slowest
    response time) and health checks (run, passed) per bucket, and over the whole period. The
    first bucket starts at a multiple of the resolution, so buckets stay put between reads."""
    await access.require(session, "deployment", deployment_id, principal, "read")
    end = _utc(end_time, "endTime") if end_time else datetime.now(UTC)
    start = _utc(start_time, "startTime") if start_time else end - DEFAULT_WINDOW
    if start >= end:
        raise InvalidInputError.at(("query", "startTime"), "startTime must be before endTime")
    step = int(RESOLUTIONS[resolution].total_seconds())
    first = int(start.timestamp()) // step * step
    count = -(-(int(end.timestamp()) + 1 - first) // step)  # ceiling division
    if count > MAX_BUCKETS:
        raise InvalidInputError.at(
            ("query", "resolution"),
            f"the period holds {count} buckets of {resolution}; at most {MAX_BUCKETS}",
        )
    buckets = [
        StatsBucket(**_EMPTY, start=datetime.fromtimestamp(first + i * step, UTC))
        for i in range(count)
    ]
    since = datetime.fromtimestamp(first, UTC)
    for row in await _calls(session, deployment_id, since, end, first, step):
        bucket = buckets[int(row.bucket)]
        bucket.total_requests = int(row.calls)
        bucket.server_errors = int(row.server_errors or 0)
        bucket.user_errors = int(row.user_errors or 0)
        bucket.response_time_avg = _ms(row.latency_avg)
        bucket.response_time_max = _ms(row.latency_max)
    for row in await _checks(session, deployment_id, since, end, first, step):
        buckets[int(row.bucket)].health_checks = int(row.checks)
        buckets[int(row.bucket)].health_checks_ok = int(row.ok or 0)
    return DeploymentStats(
        period=StatsPeriod(start=since, end=end),
        resolution=resolution,
        summary=_summary(buckets, (end - since).total_seconds()),
        buckets=buckets,
    )


_EMPTY: dict[str, Any] = {
    "total_requests": 0,
    "server_errors": 0,
    "user_errors": 0,
    "response_time_avg": None,
    "response_time_max": None,
    "health_checks": 0,
    "health_checks_ok": 0,
}


def _utc(value: datetime, name: str) -> datetime:
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        utc.timestamp()
    except (OverflowError, ValueError):
        raise InvalidInputError.at(("query", name), "the time is out of range") from None
    return utc


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


def _bucket(session: AsyncSession, column: Any, first: int, step: int) -> ColumnElement[Any]:
    """The bucket index of a timestamp column, in SQL (SQLite and PostgreSQL)."""
    if session.get_bind().dialect.name == "sqlite":
        seconds = cast(func.strftime("%s", column), Integer)
        return ((seconds - first) // step).label("bucket")
    return func.floor((extract("epoch", column) - first) / step).label("bucket")


async def _calls(
    session: AsyncSession, deployment_id: str, since: datetime, end: datetime, first: int, step: int
) -> Sequence[Row[Any]]:
    bucket = _bucket(session, AuditEvent.at, first, step)
    status = AuditEvent.status_code
    query = (
        select(
            bucket,
            func.count().label("calls"),
            func.count().filter(status >= 500).label("server_errors"),
            func.count().filter(status >= 400, status < 500).label("user_errors"),
            func.avg(AuditEvent.latency_ms).label("latency_avg"),
            func.max(AuditEvent.latency_ms).label("latency_max"),
        )
        .where(
            AuditEvent.resource_id == deployment_id,
            AuditEvent.resource_type == "deployment",
            AuditEvent.action == "deployment.invoke",
            AuditEvent.at >= since,
            AuditEvent.at <= end,
        )
        .group_by(bucket)
    )
    return (await session.execute(query)).all()


async def _checks(
    session: AsyncSession, deployment_id: str, since: datetime, end: datetime, first: int, step: int
) -> Sequence[Row[Any]]:
    bucket = _bucket(session, HealthCheck.checked_at, first, step)
    query = (
        select(
            bucket,
            func.count().label("checks"),
            func.count().filter(HealthCheck.ok.is_(True)).label("ok"),
        )
        .where(
            HealthCheck.deployment_id == deployment_id,
            HealthCheck.checked_at >= since,
            HealthCheck.checked_at <= end,
        )
        .group_by(bucket)
    )
    return (await session.execute(query)).all()


def _summary(buckets: list[StatsBucket], seconds: float) -> StatsSummary:
    calls = sum(b.total_requests for b in buckets)
    checks = sum(b.health_checks for b in buckets)
    ok = sum(b.health_checks_ok for b in buckets)
    timed = [b for b in buckets if b.response_time_avg is not None]
    weighted = sum((b.response_time_avg or 0) * b.total_requests for b in timed)
    weight = sum(b.total_requests for b in timed)
    maxima = [b.response_time_max for b in buckets if b.response_time_max is not None]
    return StatsSummary(
        total_requests=calls,
        server_errors=sum(b.server_errors for b in buckets),
        user_errors=sum(b.user_errors for b in buckets),
        response_time_avg=round(weighted / weight, 2) if weight else None,
        response_time_max=max(maxima) if maxima else None,
        health_checks=checks,
        health_checks_ok=ok,
        requests_per_minute=round(calls / max(seconds / 60, 1e-9), 3),
        availability=round(ok / checks, 4) if checks else None,
    )
