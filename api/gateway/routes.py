"""The invoke gateway: `/endpoints/workloads/{id}/...` and `/endpoints/deployments/{id}/...`.

Any method, path, query, headers and streamed body go to a ready replica (round robin), with
the prefix stripped; WebSocket sessions too (`websocket.py`). Any valid API key may
invoke a workload: drafts are not governed. A deployment takes its own invoke tokens, or API
keys of users it is shared with.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, WebSocket
from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import HTTPConnection

from api.context import AppContext
from api.deps import ContextDep, Viewer, bearer
from api.errors import domain_error_response, status_for
from api.gateway import websocket as websocket_relay
from api.observability import ApiMetrics
from api.params import DeploymentId, WorkloadId
from models.audit import ActorKind, AuditEntry
from models.common import ErrorBody
from services import deployment_access, workloads
from services.errors import (
    AuthenticationError,
    BadGatewayError,
    DomainError,
    NotFoundError,
    PermissionDeniedError,
)

router = APIRouter(prefix="/endpoints/workloads", tags=["invoke"])

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "Whatever the workload answers, streamed back as is."},
    503: {"model": ErrorBody, "description": "No replica is ready; see `Retry-After`."},
    504: {"model": ErrorBody, "description": "The workload did not answer in time."},
}
AppPath = Annotated[str, Path(description="The path inside the workload.", max_length=4096)]


async def invoke_workload(
    request: Request, context: ContextDep, _: Viewer, workload_id: WorkloadId, path: AppPath
) -> Response:
    """Forward the request to a ready replica of the workload. The `Authorization` header is
    consumed by the gateway and not forwarded; `X-Forwarded-*` and `X-Request-ID` are added."""
    return await context.proxy.forward(
        request,
        await _workload_addresses(context, workload_id),
        path,
        target=f"workload '{workload_id}'",
    )


async def _workload_addresses(context: AppContext, workload_id: str) -> list[str]:
    """Ready addresses of a workload; NotFoundError if there is no such workload."""
    if not context.directory.knows(workload_id):
        # Unknown to the in-memory table: either it does not exist or it is seconds old.
        async with context.sessions() as session:
            await workloads.get_workload(session, workload_id)
    return await context.directory.addresses(workload_id)


deployments_router = APIRouter(prefix="/endpoints/deployments", tags=["invoke"])
DEPLOYMENT_RESPONSES: dict[int | str, dict[str, object]] = {
    **RESPONSES,
    401: {"model": ErrorBody, "description": "No credential, or a bad or revoked one."},
    403: {"model": ErrorBody, "description": "The credential may not invoke this deployment."},
}


async def invoke_deployment(
    request: Request,
    context: ContextDep,
    deployment_id: DeploymentId,
    path: AppPath,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Response:
    """Forward the request to the workload the deployment points at now. Send an invoke token
    of this deployment, or an API key whose user has a role on it. The credential is consumed
    here and not forwarded. Every call is counted, timed and written to the audit log."""
    started = time.perf_counter()
    metrics: ApiMetrics = request.app.state.metrics
    actor: str = "anonymous"
    kind: ActorKind = "anonymous"
    known = False  # metrics are labelled by deployment only once it is known to exist

    def done(status_code: int) -> None:
        _record_invocation(
            request, deployment_id, f"/{path}", request.method, status_code, started,
            actor=actor, kind=kind, known=known,
        )  # fmt: skip

    try:
        # Credentials first: an unknown caller learns nothing about which deployments exist.
        secret = _required(credentials.credentials if credentials else None)
        actor, kind = await _invoker(context, deployment_id, secret)
        target = await _deployment_workload(context, deployment_id)
        known = True
        in_flight = metrics.in_flight.labels(deployment_id)

        def finished(status_code: int) -> None:
            in_flight.dec()
            done(status_code)

        in_flight.inc()
        try:
            return await context.proxy.forward(
                request,
                await context.directory.addresses(target),
                path,
                target=f"deployment '{deployment_id}'",
                on_done=finished,
            )
        except DomainError:
            in_flight.dec()
            raise
    except DomainError as error:
        done(status_for(error))
        raise


def _record_invocation(
    connection: HTTPConnection,
    deployment_id: str,
    path: str,
    method: str,
    status_code: int,
    started: float,
    *,
    actor: str,
    kind: ActorKind,
    known: bool,
) -> None:
    """Count and time one call (once the deployment is known to exist) and queue its audit
    record."""
    context: AppContext = connection.app.state.context
    metrics: ApiMetrics = connection.app.state.metrics
    seconds = time.perf_counter() - started
    if known:
        metrics.invocations.labels(deployment_id, f"{status_code // 100}xx").inc()
        metrics.invocation_latency.labels(deployment_id).observe(seconds)
    context.audit.enqueue(
        AuditEntry(
            actor=actor,
            actor_kind=kind,
            action="deployment.invoke",
            resource_type="deployment",
            resource_id=deployment_id,
            request_id=getattr(connection.state, "request_id", None),
            source_ip=connection.client.host if connection.client else None,
            status_code=status_code,
            latency_ms=seconds * 1000,
            # The path without its query: queries may carry credentials of their own.
            summary={"method": method, "path": path},
        )
    )


async def invoke_workload_websocket(
    websocket: WebSocket, workload_id: WorkloadId, path: AppPath
) -> None:
    """A WebSocket session with a ready replica of the workload (any valid API key)."""
    context: AppContext = websocket.app.state.context
    try:
        await context.credentials.authenticate(_required(_bearer_of(websocket)))
        addresses = await _workload_addresses(context, workload_id)
        address = context.proxy.pick(addresses, target=f"workload '{workload_id}'")
        await websocket_relay.relay(websocket, context.proxy.client, address, path)
    except DomainError as error:
        await _deny(websocket, error)
    except websocket_relay.UpstreamRefused as error:
        await _deny(websocket, BadGatewayError(f"workload '{workload_id}' refused: {error}"))


async def invoke_deployment_websocket(
    websocket: WebSocket, deployment_id: DeploymentId, path: AppPath
) -> None:
    """A WebSocket session through the deployment, with the credentials an HTTP call takes.
    The session is counted and audited (status 101) when it ends."""
    context: AppContext = websocket.app.state.context
    started = time.perf_counter()
    actor: str = "anonymous"
    kind: ActorKind = "anonymous"
    known = False
    status = 101
    try:
        actor, kind = await _invoker(context, deployment_id, _required(_bearer_of(websocket)))
        workload_id = await _deployment_workload(context, deployment_id)
        known = True
        addresses = await context.directory.addresses(workload_id)
        address = context.proxy.pick(addresses, target=f"deployment '{deployment_id}'")
        await websocket_relay.relay(websocket, context.proxy.client, address, path)
    except DomainError as error:
        status = status_for(error)
        await _deny(websocket, error)
    except websocket_relay.UpstreamRefused as error:
        status = 502
        await _deny(websocket, BadGatewayError(f"deployment '{deployment_id}' refused: {error}"))
    finally:
        _record_invocation(
            websocket, deployment_id, f"/{path}", "WEBSOCKET", status, started,
            actor=actor, kind=kind, known=known,
        )  # fmt: skip


def _bearer_of(websocket: WebSocket) -> str | None:
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _required(secret: str | None) -> str:
    if not secret:
        raise AuthenticationError("send an invoke token or an API key: 'Authorization: Bearer ...'")
    return secret


async def _deployment_workload(context: AppContext, deployment_id: str) -> str:
    """The workload the deployment routes to now; NotFoundError if there is no deployment."""
    workload_id = await context.directory.deployment_target(deployment_id)
    if workload_id is None:
        raise NotFoundError("deployment", deployment_id)
    return workload_id


async def _deny(websocket: WebSocket, error: DomainError) -> None:
    """Refuse the handshake with the HTTP status and body an HTTP call would get, where the
    server supports that; otherwise close with 1008 (policy violation)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(domain_error_response(websocket, error))
    else:
        await websocket.close(code=1008, reason=error.message[:120])


async def _invoker(context: AppContext, deployment_id: str, secret: str) -> tuple[str, ActorKind]:
    """Who is calling, if they may invoke this deployment."""
    if secret.startswith(deployment_access.TOKEN_PREFIX):
        owner = await context.credentials.token(deployment_access.hash_token(secret))
        if owner is None:
            raise AuthenticationError("the invoke token is not valid")
        if owner[0] != deployment_id:
            raise PermissionDeniedError("this invoke token belongs to another deployment")
        return f"token:{owner[1]}", "invoke_token"
    principal = await context.credentials.authenticate(secret)
    if principal.role != "admin" and not await context.credentials.role(
        deployment_id, principal.username
    ):
        raise PermissionDeniedError(
            "you have no role on this deployment; an owner can share it with you"
        )
    return principal.username, "api_key"


# One route per method, so each gets its own OpenAPI operation id.
for _method in METHODS:
    router.add_api_route(
        "/{workloadId}/{path:path}",
        invoke_workload,
        methods=[_method],
        summary="Invoke a workload",
        responses=RESPONSES,
        operation_id=f"invoke_workload_{_method.lower()}",
    )
    deployments_router.add_api_route(
        "/{deploymentId}/{path:path}",
        invoke_deployment,
        methods=[_method],
        summary="Invoke a deployment",
        responses=DEPLOYMENT_RESPONSES,
        operation_id=f"invoke_deployment_{_method.lower()}",
    )
router.add_api_websocket_route("/{workloadId}/{path:path}", invoke_workload_websocket)
deployments_router.add_api_websocket_route(
    "/{deploymentId}/{path:path}", invoke_deployment_websocket
)
