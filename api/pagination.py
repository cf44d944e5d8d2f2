"""The list envelope: `count`, `totalCount`, and absolute `next`/`previous` URLs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from fastapi import Request

from models.common import Page
from services.listing import PageRequest

Row = TypeVar("Row")
Item = TypeVar("Item")


def page_of(
    request: Request,
    rows: Sequence[Row],
    total: int,
    page: PageRequest,
    present: Callable[[Row], Item],
) -> Page[Item]:
    def link(offset: int) -> str:
        return str(request.url.include_query_params(offset=offset, limit=page.limit))

    has_next = page.offset + len(rows) < total
    return Page[Item](
        count=len(rows),
        total_count=total,
        next=link(page.offset + page.limit) if has_next else None,
        previous=link(max(page.offset - page.limit, 0)) if page.offset > 0 else None,
        data=[present(row) for row in rows],
    )
