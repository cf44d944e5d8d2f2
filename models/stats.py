"""A deployment's statistics over time: what the gateway measured and what the monitor saw."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from models.common import CamelModel

Resolution = Literal["PT1M", "PT5M", "PT15M", "PT1H"]
RESOLUTIONS: dict[Resolution, timedelta] = {
    "PT1M": timedelta(minutes=1),
    "PT5M": timedelta(minutes=5),
    "PT15M": timedelta(minutes=15),
    "PT1H": timedelta(hours=1),
}


class StatsPeriod(CamelModel):
    start: datetime
    end: datetime


class StatsCounts(CamelModel):
    total_requests: int = Field(
        description="Calls through the deployment's gateway route that reached its workload "
        "(callers refused by the gateway are not counted)."
    )
    server_errors: int = Field(description="Calls answered 5xx.")
    user_errors: int = Field(description="Calls answered 4xx.")
    error_rate: float | None = Field(
        description="(serverErrors + userErrors) / totalRequests; null without calls."
    )
    response_time_avg: float | None = Field(
        description="Mean time from a call's arrival to the end of its answer, in ms."
    )
    response_time_p50: float | None = Field(
        description="Median response time in ms (within 1%), from the gateway's histogram."
    )
    response_time_p90: float | None = Field(description="90th percentile, in ms (within 1%).")
    response_time_p99: float | None = Field(description="99th percentile, in ms (within 1%).")
    response_time_max: float | None = Field(description="The slowest call, in ms.")
    health_checks: int = Field(description="Health checks run by the deployment's monitor.")
    health_checks_ok: int


class StatsBucket(StatsCounts):
    start: datetime = Field(description="The bucket covers [start, start + resolution).")


class StatsSummary(StatsCounts):
    requests_per_minute: float
    availability: float | None = Field(description="healthChecksOk / healthChecks, or null.")


class DeploymentStats(CamelModel):
    """Every bucket of the period, oldest first, empty ones included."""

    period: StatsPeriod
    resolution: Resolution
    summary: StatsSummary
    buckets: list[StatsBucket]
