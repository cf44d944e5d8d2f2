"""Calls in flight per workload, published by every gateway process for the autoscaler.

Each gateway process keeps one row of its own in the catalog (`gateway_demand`): per workload,
the average number of its calls in flight since its previous write and how many calls it holds
at zero replicas, and when it wrote (the heartbeat). It rewrites the row when the figures
change (at most once a second), every `HEARTBEAT` seconds when they do not, and at once when a
call starts waiting at zero (`api/gateway/demand.py`). The autoscaler adds up the fresh rows.

Why the catalog: it is the one thing every API and gateway process shares, on one machine or
many (the Kubernetes manifests give the pods no shared directory). Why one row per process
and not one per workload: one statement per write whatever the number of workloads, a reader
sees one whole report per process, the row is the heartbeat, and a workload whose calls end
leaves no row behind to delete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import GatewayDemand

HEARTBEAT: Final = 2.0  # seconds between writes of an unchanged report
FRESH_SECONDS: Final = 5.0  # an older report comes from a process that stopped writing
FORGOTTEN_SECONDS: Final = 60.0  # rows this old are deleted (a process killed without a word)


@dataclass
class Load:
    """What the gateways see of one workload."""

    in_flight: float = 0.0  # average calls in flight, summed over processes
    held: int = 0  # calls waiting for a replica to start


@dataclass
class DemandReport:
    at: float  # wall-clock time of the write
    in_flight: dict[str, float] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)


class Loads(dict[str, Load]):
    """The load per workload over every fresh report, and how many gateway processes sent
    one: with none, nothing is known (no gateway running), which is not the same as no load."""

    reporters: int = 0


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def write(session: AsyncSession, reporter: str, report: DemandReport) -> None:
    """Replace `reporter`'s row with `report`."""
    values: dict[str, Any] = {
        "reporter": reporter,
        "reported_at": _moment(report.at),
        "in_flight": report.in_flight,
        "held": report.held,
    }
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    statement = insert(GatewayDemand).values(values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["reporter"],
            set_={name: statement.excluded[name] for name in values if name != "reporter"},
        )
    )


async def read(session: AsyncSession, now: float | None = None) -> Loads:
    """The sum of the fresh reports. Freshness compares the writer's clock with the reader's:
    hosts kept in step by NTP differ by far less than `FRESH_SECONDS`."""
    now = time.time() if now is None else now
    rows = await session.execute(
        select(GatewayDemand.in_flight, GatewayDemand.held).where(
            GatewayDemand.reported_at >= _moment(now - FRESH_SECONDS)
        )
    )
    loads = Loads()
    for in_flight, held in rows:
        for workload, value in in_flight.items():
            loads.setdefault(workload, Load()).in_flight += float(value)
        for workload, count in held.items():
            loads.setdefault(workload, Load()).held += int(count)
        loads.reporters += 1
    return loads


async def forget(session: AsyncSession, reporter: str) -> None:
    await session.execute(delete(GatewayDemand).where(GatewayDemand.reporter == reporter))


async def forget_stale(session: AsyncSession, now: float | None = None) -> None:
    """Delete the rows of processes that stopped writing long ago (killed, or their host gone)."""
    now = time.time() if now is None else now
    cutoff = _moment(now - FORGOTTEN_SECONDS)
    await session.execute(delete(GatewayDemand).where(GatewayDemand.reported_at < cutoff))
