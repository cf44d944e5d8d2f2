"""The Temporal worker process: runs the entity workflows and the activities they call."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
from contextlib import AsyncExitStack
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import activity_methods
from activities.deployments import DeploymentActivities
from activities.slots import SupervisionSlots
from activities.supervision import SupervisionActivities
from activities.workload_catalog import WorkloadCatalogActivities
from catalog import database
from catalog.tables import Artifact, Deployment, Workload
from config import logging as wapi_logging
from config.settings import Settings
from runtimes.base import Runtime
from runtimes.factory import build_runtime
from runtimes.local.host_limits import neighbour_table_warning
from services import temporal, tracing, worker_health
from services.bundles import BundleCatalog
from services.keyring import load_keyring
from services.lifecycle import DeploymentLifecycle, WorkloadLifecycle
from services.limits import Limits
from services.refs import DeploymentRef, WorkloadRef
from workflows.common import supervision_queue, worker_queue
from workflows.deployment import DeploymentWorkflow
from workflows.replacement import ReplacementWorkflow
from workflows.workload import WorkloadWorkflow

log = logging.getLogger(__name__)


class WorkerGroup:
    """The Temporal workers of one process, on one client, entered and left together:

    * the main task queue: both workflows and the short activities (catalog writes, starting
      and removing containers), never held up by long ones;
    * the supervision queue (`supervision_queue`): long activities, at most
      `WAPI_SUPERVISION_CAPACITY` at once; a full worker stops taking them, and another
      worker on the queue does;
    * this process's own queue (`worker_queue`): `release_supervision`, which ends one of
      this worker's supervisions at once when its workload stops.
    """

    def __init__(self, workers: list[Worker], slots: SupervisionSlots, identity: str) -> None:
        self.workers = workers
        self.slots = slots
        self.identity = identity
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> WorkerGroup:
        async with AsyncExitStack() as stack:
            for worker in self.workers:
                await stack.enter_async_context(worker)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()


def build_worker(
    client: Client,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    runtime: Runtime,
    bundles: BundleCatalog,
) -> WorkerGroup:
    """The workers with every workflow and activity, their clients injected."""
    identity = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    main_queue = settings.temporal_task_queue
    own_queue = worker_queue(main_queue, identity)
    slots = SupervisionSlots(settings.supervision_capacity)
    catalog = WorkloadCatalogActivities(sessions, bundles, Limits.from_settings(settings))
    supervision = SupervisionActivities(
        sessions,
        runtime,
        load_keyring(settings),
        slots=slots,
        worker=identity,
        worker_queue=own_queue,
        ready_timeout=timedelta(seconds=settings.ready_timeout_seconds),
    )
    lifecycle = WorkloadLifecycle.from_settings(client, settings, main_queue)
    deployment = DeploymentActivities(sessions, lifecycle, slots=slots)
    # Long activities are cancelled on shutdown and resumed on another worker.
    shutdown = timedelta(seconds=5)
    workers = [
        Worker(
            client,
            task_queue=main_queue,
            workflows=[WorkloadWorkflow, DeploymentWorkflow, ReplacementWorkflow],
            # The sandbox still refuses clocks, randomness and I/O, but no longer imports the
            # workflow modules afresh for each new run, which took about half of the first
            # activation of every new workflow. Workflow modules hold no state to leak between
            # runs (import contracts in pyproject.toml), and the replay tests still check them
            # under the full sandbox.
            workflow_runner=SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
            ),
            # The long ones too: workflows recorded before the supervision queue existed
            # still run theirs here.
            activities=activity_methods(catalog, supervision, deployment),
            identity=identity,
            graceful_shutdown_timeout=shutdown,
        ),
        Worker(
            client,
            task_queue=supervision_queue(main_queue),
            activities=[supervision.supervise, deployment.monitor],
            max_concurrent_activities=settings.supervision_capacity,
            identity=identity,
            graceful_shutdown_timeout=shutdown,
        ),
        Worker(
            client,
            task_queue=own_queue,
            activities=[supervision.release_supervision],
            identity=identity,
            graceful_shutdown_timeout=shutdown,
        ),
    ]
    return WorkerGroup(workers, slots, identity)


async def restore_workflows(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> int:
    """Start the workflow of every workload and deployment in the catalog that has none (e.g.
    after Temporal lost its database, or the API died between writing a row and starting it)."""
    lifecycle = WorkloadLifecycle.from_settings(client, settings)
    deployments = DeploymentLifecycle.from_settings(client, settings)
    async with sessions() as session:
        workload_rows = list(
            await session.execute(
                select(Workload, Artifact.collection_id).join(
                    Artifact, Artifact.id == Workload.artifact_id
                )
            )
        )
        deployment_rows = list(await session.scalars(select(Deployment)))
    for workload, collection_id in workload_rows:
        await lifecycle.ensure_workflow(WorkloadRef.of(workload, collection_id))
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
    tracing.configure(settings, "wapi-worker")
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
        if settings.runtime == "local" and (
            warning := neighbour_table_warning(settings.supervision_capacity)
        ):
            log.warning(warning)
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
        health = worker_health.WorkerHealth()
        stack.callback(asyncio.create_task(health.keep_beating()).cancel)
        if settings.worker_metrics_port:
            server = worker_health.serve(
                settings.worker_metrics_port, settings.api_host, health, worker.slots.registry
            )
            stack.callback(server.server_close)
            stack.callback(server.shutdown)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        async with worker:
            restored = await restore_workflows(client, settings, sessions)
            log.info(
                "worker running",
                extra={
                    "task_queue": settings.temporal_task_queue,
                    "worker": worker.identity,
                    "supervision_capacity": settings.supervision_capacity,
                    "entities": restored,
                },
            )
            sweeper = asyncio.create_task(_keep_restoring(client, settings, sessions))
            health.polling = True
            await stopping.wait()
            health.polling = False
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
