"""Per-minute traffic of each deployment, and of each workload behind one, as the gateway
measured it: calls, errors and a latency histogram, one catalog row per gateway process and
minute, added up when read (the stats route reads deployments, a rollout's analysis workloads).

Latencies go into log-scale buckets (bucket `i` holds latencies in (GAMMA^(i-1), GAMMA^i]
microseconds), so a histogram stays small (a few dozen buckets in practice), histograms of
several processes and minutes merge by adding counts, and a quantile read from the merged
histogram is within 1% of the true latency whatever its size (the DDSketch idea).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import DeploymentTraffic, WorkloadTraffic

Per = Literal["deployment", "workload"]
GAMMA: Final = 1.02
_LOG_GAMMA: Final = math.log(GAMMA)


def bucket_of(seconds: float) -> int:
    return math.ceil(math.log(max(seconds * 1e6, 1.0)) / _LOG_GAMMA)


def quantile_ms(histogram: dict[int, int], q: float) -> float | None:
    """The latency of the call at rank ceil(q * calls) (the nearest-rank quantile), in ms;
    None without calls."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return round(2 * GAMMA**index / (GAMMA + 1) / 1000, 3)
    raise AssertionError("unreachable: the ranks add up to the total")


@dataclass
class Traffic:
    """Calls counted in some period (a minute of one process, or any sum of those)."""

    requests: int = 0
    server_errors: int = 0
    user_errors: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0
    histogram: dict[int, int] = field(default_factory=dict)

    def add_call(self, status: int, seconds: float, bucket: int | None = None) -> None:
        """One call; `bucket` is `bucket_of(seconds)`, when the caller has it already."""
        self.requests += 1
        if status >= 500:
            self.server_errors += 1
        elif status >= 400:
            self.user_errors += 1
        ms = seconds * 1000
        self.latency_sum_ms += ms
        if ms > self.latency_max_ms:
            self.latency_max_ms = ms
        index = bucket_of(seconds) if bucket is None else bucket
        self.histogram[index] = self.histogram.get(index, 0) + 1

    def add(self, other: Traffic) -> None:
        self.requests += other.requests
        self.server_errors += other.server_errors
        self.user_errors += other.user_errors
        self.latency_sum_ms += other.latency_sum_ms
        self.latency_max_ms = max(self.latency_max_ms, other.latency_max_ms)
        for index, count in other.histogram.items():
            self.histogram[index] = self.histogram.get(index, 0) + count

    @classmethod
    def of(cls, row: DeploymentTraffic | WorkloadTraffic) -> Traffic:
        return cls(
            requests=row.requests,
            server_errors=row.server_errors,
            user_errors=row.user_errors,
            latency_sum_ms=row.latency_sum_ms,
            latency_max_ms=row.latency_max_ms,
            histogram={int(k): int(v) for k, v in row.latency_histogram.items()},
        )


@dataclass(frozen=True)
class MinuteOf:
    """One process's count of one deployment's (or workload's) calls in one minute, so far."""

    key: str
    minute: datetime
    traffic: Traffic


async def save(
    session: AsyncSession, writer: str, minutes: Iterable[MinuteOf], per: Per = "deployment"
) -> None:
    """Write (or rewrite) `writer`'s rows for these minutes: a row holds the whole minute so
    far, so writing it again is harmless."""
    table = DeploymentTraffic if per == "deployment" else WorkloadTraffic
    key = f"{per}_id"
    values: list[dict[str, Any]] = [
        {
            key: m.key,
            "minute": m.minute,
            "writer": writer,
            "requests": m.traffic.requests,
            "server_errors": m.traffic.server_errors,
            "user_errors": m.traffic.user_errors,
            "latency_sum_ms": round(m.traffic.latency_sum_ms, 3),
            "latency_max_ms": round(m.traffic.latency_max_ms, 3),
            "latency_histogram": {str(k): v for k, v in m.traffic.histogram.items()},
        }
        for m in minutes
    ]
    if not values:
        return
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    statement = insert(table).values(values)
    replaced = {
        name: statement.excluded[name]
        for name in values[0]
        if name not in (key, "minute", "writer")
    }
    await session.execute(
        statement.on_conflict_do_update(index_elements=[key, "minute", "writer"], set_=replaced)
    )


async def minutes(
    session: AsyncSession, deployment_id: str, since: datetime, end: datetime
) -> Sequence[DeploymentTraffic]:
    """Every process's rows of the deployment for the minutes in [since, end]."""
    rows = await session.scalars(
        select(DeploymentTraffic).where(
            DeploymentTraffic.deployment_id == deployment_id,
            DeploymentTraffic.minute >= since,
            DeploymentTraffic.minute <= end,
        )
    )
    return rows.all()


async def workload_minutes(
    session: AsyncSession, workload_id: str, since: datetime, end: datetime
) -> Traffic:
    """The workload's calls through deployments in the minutes [since, end], added up."""
    rows = await session.scalars(
        select(WorkloadTraffic).where(
            WorkloadTraffic.workload_id == workload_id,
            WorkloadTraffic.minute >= since,
            WorkloadTraffic.minute <= end,
        )
    )
    total = Traffic()
    for row in rows:
        total.add(Traffic.of(row))
    return total


async def prune(session: AsyncSession, before: datetime) -> None:
    for table in (DeploymentTraffic, WorkloadTraffic):
        await session.execute(delete(table).where(table.minute < before))


async def forget(session: AsyncSession, deployment_id: str) -> None:
    await session.execute(
        delete(DeploymentTraffic).where(DeploymentTraffic.deployment_id == deployment_id)
    )
