"""The audit log (admins): a searchable list, newest first, and the chain's verification."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from console.visit import VisitDep, render

router = APIRouter()
PAGE = 50
FILTERS = ("actor", "action", "resourceType", "resourceId", "since", "until")


def _moment(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


@router.get("/audit")
async def audit_page(
    visit: VisitDep,
    actor: str = "",
    action: str = "",
    resourceType: str = "",
    resourceId: str = "",
    since: str = "",
    until: str = "",
    offset: int = 0,
) -> HTMLResponse:
    page = await visit.api.audit.list(
        actor=actor or None,
        action=action or None,
        resource_type=resourceType or None,
        resource_id=resourceId or None,
        since=_moment(since),
        until=_moment(until),
        offset=max(offset, 0),
        limit=PAGE,
        order_by="-seq",
    )
    filters = dict(
        zip(FILTERS, (actor, action, resourceType, resourceId, since, until), strict=True)
    )
    return render(
        visit.request,
        "audit.html",
        visit,
        section="audit",
        page=page,
        offset=max(offset, 0),
        limit=PAGE,
        filters=filters,
    )


@router.get("/audit/verification")
async def verification(visit: VisitDep) -> HTMLResponse:
    """Walks the whole chain: loaded after the page, so the list does not wait for it."""
    result = await visit.api.audit.verify()
    return render(visit.request, "_verification.html", visit, result=result)
