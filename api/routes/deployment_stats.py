"""`/console/deployments/{id}/stats/`: requests, errors and latency percentiles as the
gateway measured them, and the monitor's health checks, per time bucket.

Each gateway process writes, per deployment and minute, its count of calls, errors and a
latency histogram (`api/gateway/traffic.py`, every few seconds): the figures here add up
every process's rows, and percentiles come from the merged histograms. Health checks are the
monitor's, of which the newest 500 per deployment are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import BigInteger, Integer, Row, cast, extract, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from api.deps import SessionDep, Viewer
from api.params import DeploymentId
from catalog.tables import HealthCheck
from models.stats import (
    RESOLUTIONS,
    DeploymentStats,
    Resolution,
    StatsBucket,
    StatsPeriod,
    StatsSummary,
)
from services import access, traffic
from services.errors import InvalidInputError
from services.traffic import Traffic, quantile_ms

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
    """Calls through the deployment's gateway route (count, 4xx and 5xx, error rate, mean,
    p50, p90, p99 and slowest response time) and health checks (run, passed) per bucket, and
    over the whole period, as every gateway process measured them (written every few
    seconds, per minute). The first bucket starts at a multiple of the resolution, so buckets
    stay put between reads."""
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
    counted = [Traffic() for _ in buckets]
    for row in await traffic.minutes(session, deployment_id, since, end):
        counted[(int(row.minute.timestamp()) - first) // step].add(Traffic.of(row))
    total = Traffic()
    for index, calls in enumerate(counted):
        total.add(calls)
        buckets[index] = buckets[index].model_copy(update=_counts(calls))
    for check in await _checks(session, deployment_id, since, end, first, step):
        buckets[int(check.bucket)].health_checks = int(check.checks)
        buckets[int(check.bucket)].health_checks_ok = int(check.ok or 0)
    return DeploymentStats(
        period=StatsPeriod(start=since, end=end),
        resolution=resolution,
        summary=_summary(buckets, total, (end - since).total_seconds()),
        buckets=buckets,
    )


_EMPTY: dict[str, Any] = {
    "total_requests": 0,
    "server_errors": 0,
    "user_errors": 0,
    "error_rate": None,
    "response_time_avg": None,
    "response_time_p50": None,
    "response_time_p90": None,
    "response_time_p99": None,
    "response_time_max": None,
    "health_checks": 0,
    "health_checks_ok": 0,
}


def _counts(calls: Traffic) -> dict[str, Any]:
    """The call fields of a bucket or of the whole period."""
    n = calls.requests
    if not n:
        return {}
    histogram = calls.histogram
    return {
        "total_requests": n,
        "server_errors": calls.server_errors,
        "user_errors": calls.user_errors,
        "error_rate": round((calls.server_errors + calls.user_errors) / n, 4),
        "response_time_avg": round(calls.latency_sum_ms / n, 2),
        "response_time_p50": quantile_ms(histogram, 0.5),
        "response_time_p90": quantile_ms(histogram, 0.9),
        "response_time_p99": quantile_ms(histogram, 0.99),
        "response_time_max": round(calls.latency_max_ms, 2),
    }


def _utc(value: datetime, name: str) -> datetime:
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        utc.timestamp()
    except (OverflowError, ValueError):
        raise InvalidInputError.at(("query", name), "the time is out of range") from None
    return utc


def _bucket(session: AsyncSession, column: Any, first: int, step: int) -> ColumnElement[Any]:
    """The bucket index of a timestamp column, in SQL (SQLite and PostgreSQL)."""
    if session.get_bind().dialect.name == "sqlite":
        seconds = cast(func.strftime("%s", column), Integer)
        return ((seconds - first) // step).label("bucket")
    # BIGINT: times long before 1970 are far outside the 32-bit integer a bare int binds as.
    return func.floor((extract("epoch", column) - literal(first, BigInteger)) / step).label(
        "bucket"
    )


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


def _summary(buckets: list[StatsBucket], calls: Traffic, seconds: float) -> StatsSummary:
    checks = sum(b.health_checks for b in buckets)
    ok = sum(b.health_checks_ok for b in buckets)
    fields = {**_EMPTY, **_counts(calls), "health_checks": checks, "health_checks_ok": ok}
    return StatsSummary(
        **fields,
        requests_per_minute=round(calls.requests / max(seconds / 60, 1e-9), 3),
        availability=round(ok / checks, 4) if checks else None,
    )
