"""`/endpoints/workloads/{id}/...`: invoke a workload through the gateway.

Any method, path, query, headers and streamed body go to a ready replica (round robin), with
the prefix stripped. Any valid API key may invoke a workload: drafts are not governed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from workload_api.api.deps import ContextDep, Viewer
from workload_api.api.params import WorkloadId
from workload_api.models.common import ErrorBody
from workload_api.services import workloads

router = APIRouter(prefix="/endpoints/workloads", tags=["invoke"])

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "Whatever the workload answers, streamed back as is."},
    503: {"model": ErrorBody, "description": "No replica is ready; see `Retry-After`."},
    504: {"model": ErrorBody, "description": "The workload did not answer in time."},
}
AppPath = Annotated[str, Path(description="The path inside the workload.", max_length=4096)]


@router.api_route(
    "/{workloadId}/{path:path}", methods=METHODS, summary="Invoke a workload", responses=RESPONSES
)
async def invoke_workload(
    request: Request, context: ContextDep, _: Viewer, workload_id: WorkloadId, path: AppPath
) -> Response:
    """Forward the request to a ready replica of the workload. The `Authorization` header is
    consumed by the gateway and not forwarded; `X-Forwarded-*` and `X-Request-ID` are added."""
    if not context.directory.knows(workload_id):
        # Unknown to the in-memory table: either it does not exist or it is seconds old.
        async with context.sessions() as session:
            await workloads.get_workload(session, workload_id)
    return await context.proxy.forward(
        request,
        await context.directory.addresses(workload_id),
        path,
        target=f"workload '{workload_id}'",
    )
