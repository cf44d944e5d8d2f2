"""Shared list mechanics: filters come from each resource, paging and ordering from here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.errors import InvalidInputError

Row = TypeVar("Row")


def matching(search: str, *columns: InstrumentedAttribute[Any]) -> ColumnElement[bool]:
    """Case-insensitive substring match on any of `columns`; `%` and `_` match themselves."""
    escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(*(column.ilike(f"%{escaped}%", escape="\\") for column in columns))


@dataclass(frozen=True)
class PageRequest:
    offset: int = 0
    limit: int = 100
    order_by: str | None = None


async def fetch_page(
    session: AsyncSession,
    statement: Select[Row],
    page: PageRequest,
    *,
    sort_keys: dict[str, InstrumentedAttribute[Any]],
    default_order: Sequence[Any],
    tiebreak: InstrumentedAttribute[Any],
) -> tuple[list[Row], int]:
    """Run `statement` for one page; `orderBy` is a key of `sort_keys`, '-' for descending."""
    total = await session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    if page.order_by:
        key = page.order_by.removeprefix("-")
        if key not in sort_keys:
            raise InvalidInputError.at(
                ("query", "orderBy"),
                f"cannot order by '{key}'; use one of {sorted(sort_keys)} with an optional '-'",
            )
        column = sort_keys[key]
        order = [column.desc() if page.order_by.startswith("-") else column.asc(), tiebreak]
    else:
        order = [*default_order, tiebreak]
    rows = await session.scalars(statement.order_by(*order).offset(page.offset).limit(page.limit))
    return list(rows), total
