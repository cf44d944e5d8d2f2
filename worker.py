"""The Temporal worker process: runs the entity workflows and the activities they call."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities import activity_methods
from activities.deployments import DeploymentActivities
from activities.supervision import SupervisionActivities
from activities.workload_catalog import WorkloadCatalogActivities
from catalog import database
from catalog.tables import Deployment, Workload
from config import logging as wapi_logging
from config.settings import Settings
from runtimes.base import Runtime
from runtimes.factory import build_runtime
from services import temporal
from services.bundles import BundleCatalog
from services.keyring import load_keyring
from services.lifecycle import DeploymentLifecycle, WorkloadLifecycle
from services.limits import Limits
from services.refs import DeploymentRef, WorkloadRef
from workflows.deployment import DeploymentWorkflow
from workflows.workload import WorkloadWorkflow

log = logging.getLogger(__name__)


def build_worker(
    client: Client,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    runtime: Runtime,
    bundles: BundleCatalog,
) -> Worker:
    """The worker with every workflow and activity, its clients injected."""
    catalog = WorkloadCatalogActivities(sessions, bundles, Limits.from_settings(settings))
    supervision = SupervisionActivities(
        sessions,
        runtime,
        load_keyring(settings),
        tick_seconds=settings.probe_tick_seconds,
        ready_timeout=timedelta(seconds=settings.ready_timeout_seconds),
    )
    lifecycle = WorkloadLifecycle(
        client, task_queue=settings.temporal_task_queue, timeout=settings.update_timeout_seconds
    )
    deployment = DeploymentActivities(sessions, lifecycle)
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[WorkloadWorkflow, DeploymentWorkflow],
        activities=activity_methods(catalog, supervision, deployment),
        # Long supervision activities are cancelled on shutdown and resumed on another worker.
        graceful_shutdown_timeout=timedelta(seconds=5),
        # Cancellation reaches an activity with a heartbeat reply; without this the SDK sends
        # heartbeats only every 8 s (0.8 x timeout), and every stop would wait that long.
        max_heartbeat_throttle_interval=timedelta(seconds=1),
    )


async def restore_workflows(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> int:
    """Start the workflow of every workload and deployment in the catalog that has none (e.g.
    after Temporal lost its database, or the API died between writing a row and starting it)."""
    lifecycle = WorkloadLifecycle(
        client, task_queue=settings.temporal_task_queue, timeout=settings.update_timeout_seconds
    )
    deployments = DeploymentLifecycle(
        client, task_queue=settings.temporal_task_queue, timeout=settings.update_timeout_seconds
    )
    async with sessions() as session:
        workload_rows = list(await session.scalars(select(Workload)))
        deployment_rows = list(await session.scalars(select(Deployment)))
    for workload in workload_rows:
        await lifecycle.ensure_workflow(WorkloadRef.of(workload))
    for deployment in deployment_rows:
        await deployments.ensure_workflow(DeploymentRef.of(deployment))
    return len(workload_rows) + len(deployment_rows)


async def connect(settings: Settings, *, attempts: int = 60) -> Client:
    """Connect to Temporal, waiting for it to come up (it may start after the worker)."""
    for attempt in range(1, attempts + 1):
        try:
            return await temporal.connect(settings)
        except RuntimeError as error:
            if attempt == attempts:
                raise
            log.info(
                "waiting for Temporal",
                extra={"address": settings.temporal_address, "error": str(error)},
            )
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


async def run(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        engine = database.create_engine(settings.catalog_url)
        stack.push_async_callback(engine.dispose)
        sessions = database.create_sessionmaker(engine)
        runtime = build_runtime(settings)
        if runtime is None:
            raise SystemExit(
                "WAPI_DOCKER_URL is not set; `wapi run` sets it, or point it at Docker"
            )
        stack.push_async_callback(runtime.close)
        client = await connect(settings)
        worker = build_worker(
            client,
            settings,
            sessions,
            runtime,
            BundleCatalog.load(
                settings.resource_bundles_file, default=settings.default_resource_bundle
            ),
        )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        async with worker:
            restored = await restore_workflows(client, settings, sessions)
            log.info(
                "worker running",
                extra={"task_queue": settings.temporal_task_queue, "entities": restored},
            )
            sweeper = asyncio.create_task(_keep_restoring(client, settings, sessions))
            await stopping.wait()
            sweeper.cancel()
        log.info("worker stopped")


async def _keep_restoring(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Restore missing workflows now and then, not only at start-up: an API process that dies
    between writing a row and starting its workflow leaves the row without one. Starting a
    workflow that runs already is a no-op."""
    while True:
        await asyncio.sleep(settings.restore_interval_seconds)
        try:
            await restore_workflows(client, settings, sessions)
        except Exception as error:  # the next round tries again
            log.warning("could not restore workflows", extra={"error": str(error)})


def main() -> None:
    settings = Settings()
    wapi_logging.configure(settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
