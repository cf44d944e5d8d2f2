"""Lifecycle events of workloads and deployments: one shape, one table per kind of subject."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from catalog.tables import DeploymentEvent, WorkloadEvent, utcnow
from services.listing import PageRequest, fetch_page

EventTable = type[WorkloadEvent] | type[DeploymentEvent]
Event = WorkloadEvent | DeploymentEvent


def _subject(table: EventTable) -> InstrumentedAttribute[str]:
    return table.workload_id if table is WorkloadEvent else table.deployment_id  # type: ignore[union-attr]


async def add(
    session: AsyncSession,
    table: EventTable,
    subject_id: str,
    type: str,
    message: str,
    actor: str,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    row = table(
        type=type, message=message, actor=actor, details=details or {}, created_at=at or utcnow()
    )
    setattr(row, _subject(table).key, subject_id)
    session.add(row)  # written with the transaction's next flush, in the order added


async def page(
    session: AsyncSession, table: EventTable, subject_id: str, request: PageRequest
) -> tuple[list[Any], int]:
    """Oldest first; `orderBy=-timestamp` for newest first."""
    return await fetch_page(
        session,
        select(table).where(_subject(table) == subject_id),
        request,
        sort_keys={"timestamp": table.id},
        default_order=[table.id.asc()],
        tiebreak=table.id,
    )
