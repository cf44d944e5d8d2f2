"""Workloads: the list, and a page per workload with its live status, replicas, events and
log tail, and the actions the user's role allows (start, stop, scale, deploy, delete)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime
from typing import Annotated, Any, TypeVar, get_args

from fastapi import APIRouter, Header, Request
from fastapi.responses import HTMLResponse, Response

from client import ApiError, WapiError
from console.sse import EventStream, message
from console.visit import ActionDep, Visit, VisitDep, choice, fragment, render
from models.status import WorkloadStatus
from models.workloads import WorkloadPublic

router = APIRouter()
T = TypeVar("T")
PAGE = 20
STATUSES: tuple[WorkloadStatus, ...] = get_args(WorkloadStatus)
EVENTS_SHOWN = 50
LOG_LINES = 200


async def _or_error(call: Awaitable[T]) -> T | ApiError:
    try:
        return await call
    except ApiError as error:
        return error


def desired(workload: WorkloadPublic) -> int:
    return sum(group.replica_count for group in workload.runtime.container_groups)


@router.get("/workloads")
async def workloads_page(
    visit: VisitDep, search: str = "", status: str = "", offset: int = 0
) -> HTMLResponse:
    page = await visit.api.workloads.list(
        search=search or None,
        status=choice(status, STATUSES),
        offset=max(offset, 0),
        limit=PAGE,
    )
    # One call per row, one after another: on SQLite every API request takes the catalog's
    # write lock, so concurrent calls only queue (bench/console_pages.py: 7x slower so).
    replicas = [await _or_error(visit.api.workloads.replicas(w.id)) for w in page.data]
    rows = [
        {
            "workload": workload,
            "ready": None if isinstance(found, ApiError) else sum(r.ready for r in found),
            "desired": desired(workload),
        }
        for workload, found in zip(page.data, replicas, strict=True)
    ]
    return render(
        visit.request,
        "workloads.html",
        visit,
        section="workloads",
        rows=rows,
        page=page,
        offset=max(offset, 0),
        limit=PAGE,
        filters={"search": search, "status": status},
        statuses=STATUSES,
    )


async def _live(visit: Visit, workload_id: str) -> dict[str, Any]:
    workload = await visit.api.workloads.get(workload_id)
    replicas = await visit.api.workloads.replicas(workload_id)
    served = await visit.api.deployments.list(workload_id=workload_id, limit=10)
    return {
        "workload": workload,
        "replicas": replicas,
        "ready": sum(r.ready for r in replicas),
        "desired": desired(workload),
        "deployments": served.data,
    }


@router.get("/workloads/{workload_id}")
async def workload_page(visit: VisitDep, workload_id: str) -> HTMLResponse:
    live = await _live(visit, workload_id)
    return render(visit.request, "workload.html", visit, section="workloads", **live)


@router.get("/workloads/{workload_id}/live")
async def workload_live(visit: VisitDep, workload_id: str) -> HTMLResponse:
    """The part of the page that follows the workload: status, replicas, lifecycle buttons."""
    live = await _live(visit, workload_id)
    return render(visit.request, "_workload_live.html", visit, **live)


@router.get("/workloads/{workload_id}/events/stream")
async def workload_events(
    visit: VisitDep,
    workload_id: str,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventStream:
    """Events as they happen (the last few first); each message's id is the number of events
    sent so far, so a reconnecting browser resumes after the last one it has."""
    api = visit.api
    request = visit.request

    async def stream() -> AsyncIterator[str]:
        try:
            if last_event_id and last_event_id.isdigit():
                offset = int(last_event_id)
            else:
                total = (await api.workloads.events(workload_id, limit=1)).total_count
                offset = max(0, total - EVENTS_SHOWN)
            while True:
                page = await api.workloads.events(workload_id, offset=offset, limit=100)
                for event in page.data:
                    offset += 1
                    html = fragment(request, "_event.html", event=event)
                    yield message(html, event="event", id=str(offset))
                if page.next is None:
                    await asyncio.sleep(1)
        except WapiError as error:
            yield message(_problem(request, error), event="end")

    return EventStream(stream())


@router.get("/workloads/{workload_id}/logs/stream")
async def workload_logs(
    visit: VisitDep,
    workload_id: str,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventStream:
    """The last lines of every container, then new ones as they are written. A stream ends
    when the containers do; the browser reconnects and resumes after the last line's time."""
    api = visit.api
    request = visit.request

    since = _moment(last_event_id)

    async def stream() -> AsyncIterator[str]:
        try:
            lines = api.workloads.follow_logs(
                workload_id, tail=None if since else LOG_LINES, since=since, format="json"
            )
            async for line in lines:
                record = json.loads(line)
                html = fragment(request, "_log_line.html", line=record)
                yield message(html, event="line", id=record.get("timestamp"))
        except ApiError as error:
            if error.status == 404:
                yield message(_problem(request, error), event="end")
            else:  # e.g. the container engine is unreachable: say so, and try again later
                yield message(_problem(request, error), event="line")

    return EventStream(stream())


def _moment(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _problem(request: Request, error: WapiError) -> str:
    return fragment(request, "_stream_problem.html", message=str(error))


@router.post("/workloads/{workload_id}/start")
async def start(action: ActionDep, workload_id: str) -> Response:
    await action.visit.api.workloads.start(workload_id)
    return action.done("Starting the workload.")


@router.post("/workloads/{workload_id}/stop")
async def stop(action: ActionDep, workload_id: str) -> Response:
    await action.visit.api.workloads.stop(workload_id)
    return action.done("Stopping the workload.")


@router.post("/workloads/{workload_id}/scale")
async def scale(action: ActionDep, workload_id: str) -> Response:
    api = action.visit.api
    workload = await api.workloads.get(workload_id)
    groups = []
    for group in workload.runtime.container_groups:
        body = group.as_input().model_dump(mode="json", by_alias=True, exclude_unset=True)
        if not group.autoscaled:  # the autoscaler owns an autoscaled group's count
            body["replicaCount"] = action.number(f"replicas-{group.name}", str(group.replica_count))
        groups.append(body)
    await api.workloads.update(workload_id, {"runtime": {"containerGroups": groups}})
    return action.done("Replica counts changed.")


@router.post("/workloads/{workload_id}/delete")
async def delete(action: ActionDep, workload_id: str) -> Response:
    await action.visit.api.workloads.delete(workload_id)
    return action.done("Workload deleted.", to="/workloads")


@router.post("/workloads/{workload_id}/deploy")
async def deploy(action: ActionDep, workload_id: str) -> Response:
    deployment = await action.visit.api.deployments.create(
        {"name": action.get("name"), "workloadId": workload_id}
    )
    return action.done(
        f"Deployment '{deployment.name}' created.", to=f"/deployments/{deployment.id}"
    )
