"""The invoke gateway: `/endpoints/workloads/{id}/...` and `/endpoints/deployments/{id}/...`.

Any method, path, query, headers and streamed body go to a ready replica (round robin), with
the prefix stripped; WebSocket sessions too (`websocket.py`). A workload takes API keys of
users with a role on it (or owner/user on a deployment in front of it); a deployment takes its
own invoke tokens, or API keys of users it is shared with. The decision and the audit record
of every call come from `services/invoke_access.py`.

Why one module of this length: HTTP and WebSocket routes of both kinds share one credential,
lookup and audit path.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, WebSocket
from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import HTTPConnection

from api.context import AppContext
from api.deps import ContextDep, bearer
from api.errors import domain_error_response, status_for
from api.gateway import websocket as websocket_relay
from api.observability import ApiMetrics
from api.params import DeploymentId, WorkloadId
from models.audit import ActorKind
from models.common import ErrorBody
from services import deployment_access, workloads
from services.api_keys import Principal
from services.errors import (
    AuthenticationError,
    BadGatewayError,
    DomainError,
    NotFoundError,
    PermissionDeniedError,
)
from services.invoke_access import InvokeKind, check_invoke, invocation_entry

Credential = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

router = APIRouter(prefix="/endpoints/workloads", tags=["invoke"])

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "Whatever the workload answers, streamed back as is."},
    503: {"model": ErrorBody, "description": "No replica is ready; see `Retry-After`."},
    504: {"model": ErrorBody, "description": "The workload did not answer in time."},
}
AppPath = Annotated[str, Path(description="The path inside the workload.", max_length=4096)]


async def invoke_workload(
    request: Request,
    context: ContextDep,
    workload_id: WorkloadId,
    path: AppPath,
    credentials: Credential,
) -> Response:
    """Forward the request to a ready replica of the workload. Send an API key whose user has
    a role on the workload, or is owner or user of a deployment in front of it. The
    `Authorization` header is consumed by the gateway and not forwarded; `X-Forwarded-*` and
    `X-Request-ID` are added. Every call is written to the audit log."""
    started = time.perf_counter()
    actor: str = "anonymous"
    kind: ActorKind = "anonymous"

    def done(status_code: int) -> None:
        _audit(request, "workload", workload_id, f"/{path}", request.method, status_code,
               started, actor=actor, kind=kind)  # fmt: skip

    try:
        principal = await _authenticated(context, credentials.credentials if credentials else None)
        actor, kind = principal.username, "api_key"
        await _may_invoke(context, principal, "workload", workload_id)
        return await context.proxy.forward(
            request,
            await _workload_addresses(context, workload_id),
            path,
            target=f"workload '{workload_id}'",
            on_done=done,
        )
    except DomainError as error:
        done(status_for(error))
        raise


async def _authenticated(context: AppContext, secret: str | None) -> Principal:
    return await context.credentials.authenticate(_required(secret))


async def _may_invoke(
    context: AppContext, principal: Principal, kind: InvokeKind, resource_id: str
) -> None:
    role = None
    if principal.role != "admin":
        role = await context.credentials.invoke_role(kind, resource_id, principal.username)
    check_invoke(principal, kind, role)


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
    credentials: Credential,
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
    """Count and time one deployment call (once the deployment is known to exist) and queue
    its audit record."""
    metrics: ApiMetrics = connection.app.state.metrics
    if known:
        seconds = time.perf_counter() - started
        metrics.invocations.labels(deployment_id, f"{status_code // 100}xx").inc()
        metrics.invocation_latency.labels(deployment_id).observe(seconds)
    _audit(connection, "deployment", deployment_id, path, method, status_code, started,
           actor=actor, kind=kind)  # fmt: skip


def _audit(
    connection: HTTPConnection,
    target: InvokeKind,
    resource_id: str,
    path: str,
    method: str,
    status_code: int,
    started: float,
    *,
    actor: str,
    kind: ActorKind,
) -> None:
    context: AppContext = connection.app.state.context
    context.audit.enqueue(
        invocation_entry(
            target,
            resource_id,
            actor=actor,
            actor_kind=kind,
            method=method,
            path=path,
            status_code=status_code,
            latency_ms=(time.perf_counter() - started) * 1000,
            request_id=getattr(connection.state, "request_id", None),
            source_ip=connection.client.host if connection.client else None,
        )
    )


async def invoke_workload_websocket(
    websocket: WebSocket, workload_id: WorkloadId, path: AppPath
) -> None:
    """A WebSocket session with a ready replica of the workload, with the credentials an HTTP
    call takes. The session is audited (status 101) when it ends."""
    context: AppContext = websocket.app.state.context
    started = time.perf_counter()
    actor: str = "anonymous"
    kind: ActorKind = "anonymous"
    status = 101
    try:
        principal = await _authenticated(context, _bearer_of(websocket))
        actor, kind = principal.username, "api_key"
        await _may_invoke(context, principal, "workload", workload_id)
        addresses = await _workload_addresses(context, workload_id)
        address = context.proxy.pick(addresses, target=f"workload '{workload_id}'")
        await websocket_relay.relay(websocket, context.proxy.client, address, path)
    except DomainError as error:
        status = status_for(error)
        await _deny(websocket, error)
    except websocket_relay.UpstreamRefused as error:
        status = 502
        await _deny(websocket, BadGatewayError(f"workload '{workload_id}' refused: {error}"))
    finally:
        _audit(websocket, "workload", workload_id, f"/{path}", "WEBSOCKET", status, started,
               actor=actor, kind=kind)  # fmt: skip


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
    await _may_invoke(context, principal, "deployment", deployment_id)
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
