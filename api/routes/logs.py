"""`/console/workloads/{id}/logs/`: container logs, as a snapshot or a live stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import ContextDep, SessionDep, Viewer
from api.params import WorkloadId
from runtimes.base import LogLine
from runtimes.errors import RuntimeUnavailableError
from services import access
from services.errors import UnavailableError

router = APIRouter(prefix="/console/workloads", tags=["workloads"])

Name = Annotated[str | None, Query(max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")]


@router.get(
    "/{workloadId}/logs/",
    summary="Read a workload's container logs",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/plain": {}, "application/x-ndjson": {}},
            "description": "One line per log record: time, replica/container, stream, message.",
        }
    },
)
async def workload_logs(
    context: ContextDep,
    session: SessionDep,
    principal: Viewer,
    workload_id: WorkloadId,
    tail: Annotated[int | None, Query(ge=0, le=100_000, description="Last N lines.")] = 100,
    since: Annotated[datetime | None, Query(description="Only lines after this time.")] = None,
    follow: Annotated[bool, Query(description="Keep the connection open for new lines.")] = False,
    replica: Name = None,
    container: Name = None,
    format: Annotated[Literal["text", "json"], Query(description="`json`: NDJSON.")] = "text",
) -> StreamingResponse:
    """stdout and stderr of every container of the workload, oldest first. With `follow=true`
    the response streams until the client disconnects. Needs `owner` or `user` on the workload
    (or on a deployment in front of it): logs may hold what the workload was sent."""
    await access.require(session, "workload", workload_id, principal, "read")
    await session.commit()
    if context.runtime is None:
        raise UnavailableError("no container runtime is configured for this API process")
    lines = context.runtime.logs(
        workload_id, replica=replica, container=container, tail=tail, since=since, follow=follow
    )
    try:
        # Read the first line now, so an unreachable runtime is a 503, not a broken stream.
        first = await anext(lines, None)
    except RuntimeUnavailableError as error:
        raise UnavailableError(f"the container runtime is unreachable: {error}") from None
    render = _json if format == "json" else _text
    media = "application/x-ndjson" if format == "json" else "text/plain; charset=utf-8"
    return StreamingResponse(_rendered(first, lines, render), media_type=media)


async def _rendered(
    first: LogLine | None, rest: AsyncIterator[LogLine], render: Callable[[LogLine], str]
) -> AsyncIterator[str]:
    if first is None:
        return
    yield render(first)
    async for line in rest:
        yield render(line)


def _text(line: LogLine) -> str:
    stamp = line.timestamp.isoformat() if line.timestamp else "-"
    return f"{stamp} {line.replica}/{line.container} {line.stream} {line.message}\n"


def _json(line: LogLine) -> str:
    return line.model_dump_json() + "\n"
