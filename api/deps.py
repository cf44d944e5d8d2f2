"""Dependencies as `Annotated` aliases, so route signatures read like plain typed parameters.

They are all `async def`: FastAPI runs a plain `def` dependency in a thread pool, a hand-off
per request that the gateway path cannot afford."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import AppContext
from models.api_keys import Role
from services.api_keys import Principal
from services.bundles import BundleCatalog
from services.errors import AuthenticationError, PermissionDeniedError, PreconditionFailedError
from services.lifecycle import DeploymentLifecycle, TemporalCalls, WorkloadLifecycle
from services.limits import Limits
from services.listing import PageRequest
from services.status_watch import StatusWatch

T = TypeVar("T", bound=TemporalCalls)


async def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_session(context: ContextDep) -> AsyncIterator[AsyncSession]:
    """A session per request. What the route leaves uncommitted commits when it returns and
    before the response is sent (scope="function"): nothing is acknowledged that is not durable.

    Routes that wait on Temporal commit first: on SQLite an open transaction holds the write
    lock, which the workflow's own catalog writes would then wait for."""
    async with context.sessions() as session:
        yield session
        await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_bundles(context: ContextDep) -> BundleCatalog:
    return context.bundles


BundlesDep = Annotated[BundleCatalog, Depends(get_bundles)]


async def get_limits(context: ContextDep) -> Limits:
    return context.limits


LimitsDep = Annotated[Limits, Depends(get_limits)]


async def get_status_watch(context: ContextDep) -> StatusWatch:
    return context.status_watch


StatusWatchDep = Annotated[StatusWatch, Depends(get_status_watch)]


def _temporal_calls(context: AppContext, kind: type[T]) -> T:
    return kind.from_settings(context.temporal, context.settings)


async def get_lifecycle(context: ContextDep) -> WorkloadLifecycle:
    return _temporal_calls(context, WorkloadLifecycle)


async def get_deployment_lifecycle(context: ContextDep) -> DeploymentLifecycle:
    return _temporal_calls(context, DeploymentLifecycle)


LifecycleDep = Annotated[WorkloadLifecycle, Depends(get_lifecycle)]
DeploymentLifecycleDep = Annotated[DeploymentLifecycle, Depends(get_deployment_lifecycle)]

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key: `Authorization: Bearer wapi_...`. Admins create keys.",
)


async def get_principal(
    context: ContextDep,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise AuthenticationError("send an API key in the header 'Authorization: Bearer <key>'")
    principal = await context.credentials.authenticate(credentials.credentials)
    request.state.principal = principal
    return principal


def require(role: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.has_role(role):
            raise PermissionDeniedError(
                f"this action needs the '{role}' role; your key has '{principal.role}'"
            )
        return principal

    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Editor = Annotated[Principal, Depends(require("editor"))]
Admin = Annotated[Principal, Depends(require("admin"))]


async def page_request(
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, at most 100.")] = 100,
    order_by: Annotated[
        str | None,
        Query(
            alias="orderBy",
            max_length=40,
            pattern=r"^-?[A-Za-z]+$",
            description="Field to sort by; prefix '-' for descending, e.g. `-createdAt`.",
        ),
    ] = None,
) -> PageRequest:
    return PageRequest(offset=offset, limit=limit, order_by=order_by)


PageDep = Annotated[PageRequest, Depends(page_request)]


async def expected_revision(
    if_match: Annotated[
        str | None,
        Header(
            description='The ETag you last read (e.g. `"3"`); a stale one gets 412.',
            max_length=100,
        ),
    ] = None,
) -> int | None:
    """The revision an `If-Match` header names; `*` or no header means any revision."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise PreconditionFailedError(f"If-Match {if_match!r} matches no revision of this resource")
    return int(tag)


IfMatchDep = Annotated[int | None, Depends(expected_revision)]
