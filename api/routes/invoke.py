"""The invoke routes, as documented here and served elsewhere: by the gateway, a process of
its own (`wapi gateway`, api/gateway/) at WAPI_GATEWAY_URL, so that invoke traffic never
competes with management calls for this process.

They are declared here so the OpenAPI document describes every route of the product; the
operations name the gateway as their server. A call that reaches the management API anyway
is answered 421 (Misdirected Request) with the URL to use.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from api.deps import bearer
from api.errors import error_response
from api.params import DeploymentId, WorkloadId
from models.common import ErrorBody

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
GATEWAY_SERVER = {
    "servers": [
        {
            "url": "{gateway}",
            "description": "The invoke gateway (`wapi gateway`).",
            "variables": {
                "gateway": {
                    "default": "http://127.0.0.1:8081",
                    "description": "WAPI_GATEWAY_URL, by default WAPI_GATEWAY_HOST:PORT.",
                }
            },
        }
    ]
}
RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "Whatever the workload answers, streamed back as is."},
    401: {"model": ErrorBody, "description": "No credential, or a bad or revoked one."},
    403: {"model": ErrorBody, "description": "The credential may not invoke this."},
    413: {"model": ErrorBody, "description": "The request body is over the limit."},
    421: {"model": ErrorBody, "description": "Sent to the management API: use the gateway."},
    429: {
        "model": ErrorBody,
        "description": "Too many calls of yours in flight; see `Retry-After`.",
    },
    502: {"model": ErrorBody, "description": "The workload's answer could not be read."},
    503: {"model": ErrorBody, "description": "No replica is ready or free; see `Retry-After`."},
    504: {"model": ErrorBody, "description": "The workload did not answer in time."},
}
AppPath = Annotated[str, Path(description="The path inside the workload.", max_length=4096)]

# `bearer` declares the credential in the document (an API key, or a deployment's invoke token);
# the gateway checks it.
router = APIRouter(prefix="/endpoints", tags=["invoke"], dependencies=[Depends(bearer)])


# The parameters are declared for the OpenAPI document; the gateway reads them.
async def invoke_workload(
    request: Request,
    workload_id: WorkloadId,  # noqa: ARG001
    path: AppPath,  # noqa: ARG001
) -> JSONResponse:
    """Forward the request to a ready replica of the workload, with an API key. The
    `Authorization` header is consumed by the gateway and not forwarded; `Forwarded`,
    `X-Forwarded-*`, `X-Real-IP` and `X-Request-ID` are the gateway's own."""
    return _misdirected(request)


async def invoke_deployment(
    request: Request,
    deployment_id: DeploymentId,  # noqa: ARG001
    path: AppPath,  # noqa: ARG001
) -> JSONResponse:
    """Forward the request to the workload the deployment points at now. Send an invoke token
    of this deployment, or an API key whose user has a role on it. The credential is consumed
    by the gateway and not forwarded. Every call is counted, timed and audited."""
    return _misdirected(request)


def _misdirected(request: Request) -> JSONResponse:
    gateway: str = request.app.state.context.settings.public_gateway_url
    return error_response(
        request,
        421,
        "misdirected",
        f"invoke calls are served by the gateway: {gateway}{request.url.path}",
    )


# One route per method, so each gets its own OpenAPI operation id.
for _method in METHODS:
    router.add_api_route(
        "/workloads/{workloadId}/{path:path}",
        invoke_workload,
        methods=[_method],
        summary="Invoke a workload",
        responses=RESPONSES,
        operation_id=f"invoke_workload_{_method.lower()}",
        openapi_extra=GATEWAY_SERVER,
    )
    router.add_api_route(
        "/deployments/{deploymentId}/{path:path}",
        invoke_deployment,
        methods=[_method],
        summary="Invoke a deployment",
        responses=RESPONSES,
        operation_id=f"invoke_deployment_{_method.lower()}",
        openapi_extra=GATEWAY_SERVER,
    )
