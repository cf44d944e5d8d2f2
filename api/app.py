"""`create_app()`: the FastAPI application, its lifespan and its routers."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import version

from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.client import Client

from api.audit import AuditMiddleware
from api.body_limit import BodyLimitMiddleware
from api.context import AppContext
from api.docs import install_docs
from api.errors import install_error_handlers
from api.gateway.credentials import Credentials
from api.observability import ApiMetrics, RequestContextMiddleware
from api.routes import (
    api_keys,
    artifacts,
    audit,
    bundles,
    collections,
    deployment_stats,
    deployments,
    health,
    invoke,
    logs,
    replacements,
    rollouts,
    secrets,
    sharing,
    tokens,
    workloads,
)
from catalog import database
from config.settings import Settings
from console import mount as mount_console
from models.common import ErrorBody
from runtimes.factory import build_runtime
from services import api_keys as api_key_service
from services import decider_lock, temporal, tracing
from services.audit_writer import AuditWriter
from services.autoscaler import Autoscaler
from services.bundles import BundleCatalog
from services.lifecycle import WorkloadLifecycle
from services.limits import Limits
from services.status_watch import StatusWatch, status_reader

log = logging.getLogger(__name__)

API_PREFIX = "/api/v2"
DESCRIPTION = """
Run containerized AI services with a governed lifecycle.

* **Artifacts** say what to run. Drafts are mutable; registering one makes an immutable
  version (v1, v2, ...) in an **artifact collection**.
* **Workloads** run an artifact on a runtime; **deployments** give a registered workload a
  stable, authenticated, audited URL.
* **Resource bundles** are the compute presets a workload picks.

Every route but `/healthz`, `/readyz` and `/metrics` needs `Authorization: Bearer <API key>`.
Errors share one body: `code`, `message`, `detail[]` (JSON paths of bad fields) and `requestId`.
"""
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "The body is not JSON that can be read."},
    401: {"model": ErrorBody, "description": "No API key, or a bad or revoked one."},
    403: {"model": ErrorBody, "description": "The key's role may not do this."},
    404: {"model": ErrorBody, "description": "No such resource."},
    409: {"model": ErrorBody, "description": "The resource's state forbids this."},
    412: {"model": ErrorBody, "description": "The `If-Match` ETag is stale."},
    413: {"model": ErrorBody, "description": "The body is larger than the server accepts."},
    422: {"model": ErrorBody, "description": "Bad input; `detail` lists every bad field."},
}


class TrailingSlashMiddleware:
    """Serve `/x` like `/x/` under the management API, without a redirect a POST would lose.

    The invoke gateway (`/api/v2/endpoints/`) is left alone: its paths belong to the workload.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] == "http"
            and path.startswith(API_PREFIX + "/")
            and not path.endswith("/")
            and not path.startswith(API_PREFIX + "/endpoints/")
        ):
            scope["path"] = path + "/"
            scope["raw_path"] = scope.get("raw_path", path.encode()) + b"/"
        await self.app(scope, receive, send)


async def bootstrap_catalog(
    settings: Settings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Migrate the schema and make sure an admin key exists."""
    await database.migrate(engine)
    await create_first_admin_key(settings, sessions)


async def create_first_admin_key(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    preset = settings.bootstrap_admin_key
    async with sessions() as session, session.begin():
        await database.hold_startup_lock(session)
        where = await api_key_service.ensure_admin_key(
            session,
            preset=preset.get_secret_value() if preset else None,
            key_file=settings.admin_key_file,
        )
    if where:
        log.info("created the first admin key", extra={"where": where})


# Sections of the API reference, in reading order (routes are registered in matching order).
OPENAPI_TAGS = [
    {"name": "artifacts", "description": "Draft and registered container specs."},
    {"name": "artifact collections", "description": "Numbered versions of one artifact."},
    {"name": "resource bundles", "description": "CPU, memory and GPU sizes to run with."},
    {"name": "workloads", "description": "Running artifacts: lifecycle, replicas, logs."},
    {"name": "deployments", "description": "Stable governed endpoints; swaps; health."},
    {"name": "deployment access", "description": "Invoke tokens and shared roles."},
    {
        "name": "invoke",
        "description": "Served by the invoke gateway (`wapi gateway`, WAPI_GATEWAY_URL), not by "
        "this process: calls forwarded to ready replicas.",
    },
    {"name": "secrets", "description": "Encrypted values for environment variables."},
    {"name": "API keys", "description": "Management credentials and their roles."},
    {"name": "audit", "description": "The hash-chained record of every change and call."},
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
]


def create_app(
    settings: Settings | None = None, *, temporal_client: Client | None = None
) -> FastAPI:
    """Build the API. Tests pass their own settings and Temporal client."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything entered here is released in reverse order, also after a partial start.
        async with AsyncExitStack() as stack:
            engine = database.create_engine(settings.catalog_url)
            stack.push_async_callback(engine.dispose)
            sessions = database.create_sessionmaker(engine)
            await bootstrap_catalog(settings, engine, sessions)
            reads = database.create_read_sessionmaker(engine)
            audit_writer = AuditWriter(sessions, registry=app.state.metrics.registry)
            await audit_writer.start()
            stack.push_async_callback(audit_writer.stop)
            status_watch = StatusWatch(status_reader(engine, reads))
            status_watch.start()
            stack.push_async_callback(status_watch.stop)
            runtime = build_runtime(settings)
            if runtime is not None:
                stack.push_async_callback(runtime.close)
            app.state.context = AppContext(
                settings=settings,
                engine=engine,
                sessions=sessions,
                bundles=BundleCatalog.load(
                    settings.resource_bundles_file, default=settings.default_resource_bundle
                ),
                limits=Limits.from_settings(settings),
                temporal=temporal_client or await temporal.connect(settings, lazy=True),
                runtime=runtime,
                credentials=Credentials(reads),
                audit=audit_writer,
                status_watch=status_watch,
            )
            if settings.autoscaler_enabled:
                autoscaler = Autoscaler(
                    settings,
                    sessions,
                    WorkloadLifecycle(
                        app.state.context.temporal,
                        task_queue=settings.temporal_task_queue,
                        timeout=settings.update_timeout_seconds,
                    ),
                    registry=app.state.metrics.registry,
                    runtime=runtime,
                    lock=decider_lock.for_catalog(engine, settings.state_dir),
                )
                autoscaler.start()
                stack.push_async_callback(autoscaler.stop)
                app.state.autoscaler = autoscaler
            # Everything built so far lives as long as the process: keep it out of the
            # garbage collector's full passes, which otherwise pause requests for 100+ ms.
            gc.collect()
            gc.freeze()
            yield

    app = FastAPI(
        title="Workload API",
        version=version("workload-api"),
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
        openapi_tags=OPENAPI_TAGS,
        docs_url=None,  # served with local assets by install_docs
        redoc_url=None,  # ReDoc's bundle fetches its logo from a CDN (api/docs.py)
    )
    app.state.metrics = ApiMetrics()
    install_error_handlers(app)

    api = APIRouter(prefix=API_PREFIX, responses=ERROR_RESPONSES)
    for module in (
        artifacts,
        collections,
        workloads,
        logs,
        deployments,
        deployment_stats,
        rollouts,
        replacements,
        tokens,
        bundles,
        api_keys,
        audit,
        secrets,
        invoke,  # documented here, served by the gateway process
    ):
        api.include_router(module.router)
    for router in (*sharing.routers, bundles.compute_router):
        api.include_router(router)
    app.include_router(api)
    app.include_router(health.router)
    install_docs(app)
    mount_console(app, settings)

    app.add_middleware(TrailingSlashMiddleware)
    app.add_middleware(BodyLimitMiddleware)  # inside AuditMiddleware: refusals are audited
    app.add_middleware(AuditMiddleware)  # inside RequestContextMiddleware: needs the request id
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    if tracing.configure(settings, "wapi-api") is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # Outermost: a request's span covers everything, and its context is current when a
        # route calls Temporal.
        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    return app
