"""Health, readiness and metrics: the only routes without authentication."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from pydantic import Field

from api.deps import ContextDep, bearer
from catalog import database
from models.common import CamelModel
from services.errors import AuthenticationError

# Metrics labelled with deployment ids: the invoke route answers 403 whether a deployment
# exists or not, so an anonymous /metrics must not list them either.
PRIVATE_LABELS = frozenset({"deployment"})

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


class Health(CamelModel):
    status: str = Field(examples=["ok"])


class Readiness(CamelModel):
    status: str = Field(description="`ready` when every check passes.", examples=["ready"])
    checks: dict[str, str] = Field(examples=[{"database": "ok", "temporal": "ok"}])


@router.get("/healthz", summary="Liveness")
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness",
    responses={503: {"model": Readiness, "description": "A dependency is unreachable."}},
)
async def readyz(context: ContextDep) -> JSONResponse:
    """The catalog database and the Temporal server both answer."""
    checks = {"database": "ok", "temporal": "ok"}
    try:
        await database.ping(context.engine)
    except Exception as exc:  # any failure means not ready; the reason goes to the body
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        async with asyncio.timeout(2):
            await context.temporal.service_client.check_health()
    except Exception as exc:
        checks["temporal"] = f"unreachable: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    body = Readiness(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(
    request: Request,
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> PlainTextResponse:
    """API and gateway metrics in the Prometheus text format. No key is needed; the metrics
    labelled by deployment id are left out unless an admin key is sent (or
    `WAPI_METRICS_DEPLOYMENT_LABELS` is set)."""
    registry: CollectorRegistry = request.app.state.metrics.registry
    everything = context.settings.metrics_deployment_labels or await _is_admin(context, credentials)
    body = generate_latest(registry if everything else _Without(registry, PRIVATE_LABELS))
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)


async def _is_admin(context: ContextDep, credentials: HTTPAuthorizationCredentials | None) -> bool:
    if credentials is None:
        return False
    try:
        principal = await context.credentials.authenticate(credentials.credentials)
    except AuthenticationError:  # a bad key gets what no key gets
        return False
    return principal.role == "admin"


class _Without:
    """The metric families of `registry` that have none of `labels`."""

    def __init__(self, registry: CollectorRegistry, labels: frozenset[str]) -> None:
        self.registry, self.labels = registry, labels

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            if not any(self.labels & sample.labels.keys() for sample in family.samples):
                yield family
