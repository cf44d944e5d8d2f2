"""`/auditEvents/`: read and verify the hash-chained audit log. Admins only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AfterValidator

from api.deps import Admin, PageDep, SessionDep
from api.pagination import page_of
from api.presenters.audit import present_audit_event
from models.audit import AuditEventPublic, AuditVerification
from models.common import Page
from services import audit
from services.audit import AuditFilter
from services.errors import InvalidInputError

router = APIRouter(prefix="/auditEvents", tags=["audit"])


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError("the time is out of range") from None


_TEXT = {"max_length": 100, "pattern": r"^[^\x00]*$"}
Time = Annotated[datetime | None, AfterValidator(_as_utc)]


@router.get("/", summary="List audit events")
async def list_audit_events(
    request: Request,
    session: SessionDep,
    _: Admin,
    page: PageDep,
    actor: Annotated[str | None, Query(description="Only this username.", **_TEXT)] = None,
    action: Annotated[
        str | None, Query(description="Only this action, e.g. `artifact.create`.", **_TEXT)
    ] = None,
    resource_type: Annotated[
        str | None, Query(alias="resourceType", description="e.g. `workload`.", **_TEXT)
    ] = None,
    resource_id: Annotated[
        str | None, Query(alias="resourceId", description="Only this resource.", **_TEXT)
    ] = None,
    since: Annotated[Time, Query(description="From this time on (inclusive).")] = None,
    until: Annotated[Time, Query(description="Before this time (exclusive).")] = None,
) -> Page[AuditEventPublic]:
    """Management actions (who, what, when, request id, source address, status, and the names
    of the fields sent, never their values) and deployment invocations. Oldest first;
    `orderBy=-seq` for newest first (or `at`). Each record carries its place in the hash chain."""
    where = AuditFilter(
        actor=actor,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        since=since,
        until=until,
    )
    rows, total = await audit.list_events(session, where, page)
    return page_of(request, rows, total, page, present_audit_event)


@router.get("/verify/", summary="Verify the audit chain")
async def verify_audit_chain(
    session: SessionDep,
    _: Admin,
    anchor_seq: Annotated[
        int | None,
        Query(alias="anchorSeq", ge=1, le=2**62, description="`headSeq` of an earlier run."),
    ] = None,
    anchor_hash: Annotated[
        str | None,
        Query(alias="anchorHash", pattern=r"^[0-9a-f]{64}$", description="Its `headHash`."),
    ] = None,
) -> AuditVerification:
    """Walk the whole chain and recompute every hash: an edited record, a deleted one or one
    inserted in the middle makes `valid` false, with the first bad `seq` and the reason.
    Store `headSeq` and `headHash` outside the database and pass them back as
    `anchorSeq`/`anchorHash`: then cutting off the newest records is detected too."""
    if (anchor_seq is None) != (anchor_hash is None):
        missing = "anchorHash" if anchor_hash is None else "anchorSeq"
        raise InvalidInputError.at(("query", missing), "anchorSeq and anchorHash go together")
    anchor = (anchor_seq, anchor_hash) if anchor_seq and anchor_hash else None
    return await audit.verify(session, anchor=anchor)
