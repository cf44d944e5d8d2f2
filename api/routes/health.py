"""Health, readiness and metrics: the only routes without authentication."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import Field

from api.deps import ContextDep
from catalog import database
from models.common import CamelModel
from services import fleet_metrics

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
async def metrics(request: Request, context: ContextDep) -> PlainTextResponse:
    """The management API's metrics and the fleet's state (workloads, deployments and replicas
    by status) in the Prometheus text format; no key is needed. Series that name workloads and
    deployments need the metrics token or an admin key (`WAPI_METRICS_TOKEN`,
    `WAPI_METRICS_DEPLOYMENT_LABELS`). Invoke traffic is on the gateway's own `/metrics`."""
    registry: CollectorRegistry = request.app.state.metrics.registry
    body = generate_latest(registry)
    settings = context.settings
    token = settings.metrics_token
    per_resource = await context.credentials.may_see_resource_ids(
        request.headers.get("authorization", "").encode("latin-1"),
        token=token.get_secret_value() if token else None,
        public=settings.metrics_deployment_labels,
    )
    try:
        async with context.sessions() as session:
            fleet = await fleet_metrics.snapshot(session)
    except Exception as error:  # the API's own series still answer while the catalog is away
        log.warning("fleet metrics unavailable", extra={"error": type(error).__name__})
    else:
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(fleet_metrics.FleetCollector(fleet, per_resource=per_resource))
        body += generate_latest(scrape)
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
