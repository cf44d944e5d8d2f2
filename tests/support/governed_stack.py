"""A stack where every allowed call succeeds, and resources shared with chosen users.

The API runs in-process against the test's catalog (SQLite or PostgreSQL), with a real
Temporal dev server, an in-process worker and the local runtime on Podman (the demo image):
workflows really start, stop, swap and delete containers. `settle()` stops whatever runs, so
containers do not pile up across many calls; everything is removed when the stack closes.
Invocations go through the real gateway (in this event loop) to a real HTTP server on
loopback, registered in the catalog as a ready replica, so they need no container.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web
from fastapi import FastAPI
from sqlalchemy import select
from temporalio.client import Client

from api.app import create_app
from catalog.tables import Artifact, Deployment, Secret, Workload
from config.settings import Settings
from models.artifacts import ArtifactCreate
from models.deployments import DeploymentCreate
from models.secrets import SecretCreate
from models.sharing import ResourceType, RoleChange, ShareRole
from models.status import WorkloadStatus
from models.workloads import WorkloadCreate
from runtimes.factory import build_runtime
from services import artifacts, deployments, secrets, sharing, workloads
from services.bundles import BundleCatalog
from services.keyring import load_keyring
from tests.conftest import ADMIN_KEY, client_for
from tests.factories import ADMIN, ready_replica, spec
from tests.support.gateway import gateway_in_loop
from tests.support.upstream import aiohttp_server, answering
from worker import build_worker

ACTIVE = ("submitted", "initializing", "running")


@dataclass
class GovernedStack:
    app: FastAPI
    admin: httpx.AsyncClient
    upstream: str
    gateway: str
    settings: Settings
    image: str
    keys: dict[str, str] = field(default_factory=dict)
    _names: itertools.count[int] = field(default_factory=itertools.count)

    def name(self, prefix: str = "r") -> str:
        return f"{prefix}-{next(self._names)}"

    def client(self, username: str | None) -> httpx.AsyncClient:
        return client_for(self.app, self.keys[username] if username else None, gateway=self.gateway)

    async def key(self, username: str, role: str) -> str:
        """An API key of `username` with the global role `role`."""
        made = await self.admin.post(
            "/api/v2/apiKeys/", json={"name": username, "username": username, "role": role}
        )
        assert made.status_code == 201, made.text
        self.keys[username] = made.json()["key"]
        return self.keys[username]

    async def grant(
        self, kind: ResourceType, resource_id: str, username: str, role: ShareRole | None
    ) -> None:
        if role is None:
            return
        async with self.app.state.context.sessions() as session, session.begin():
            await sharing.change_roles(
                session, kind, resource_id, [RoleChange(username=username, role=role)], "admin"
            )

    def spec(self, **container: Any) -> dict[str, Any]:
        return spec(self.image, **container)

    async def artifact(self, *, registered: bool = False, **container: Any) -> Artifact:
        data = ArtifactCreate.model_validate(
            {
                "name": self.name("artifact"),
                "status": "registered" if registered else "draft",
                "spec": self.spec(**container),
            }
        )
        async with self.app.state.context.sessions() as session, session.begin():
            return await artifacts.create_artifact(session, data, ADMIN)

    async def workload(
        self,
        *,
        status: WorkloadStatus = "stopped",
        ready: bool = False,
        never_ready: bool = False,
    ) -> Workload:
        """A workload of a registered artifact, in `status`, with no workflow yet (the API
        restores it from the catalog on the first lifecycle call). `ready`: a ready replica
        (the loopback server) in the catalog; `never_ready`: its container never passes its
        readiness probe, so it stays `initializing` once started."""
        command = {"command": ["never-ready"]} if never_ready else {}
        artifact_id = (
            await self.artifact(registered=True, readinessProbe={"path": "/ready"}, **command)
        ).id
        data = WorkloadCreate(name=self.name("workload"), artifact_id=artifact_id)
        async with self.app.state.context.sessions() as session, session.begin():
            row = await workloads.create_workload(session, data, ADMIN, BundleCatalog.load())
            row.status = status
            if ready:
                session.add(ready_replica(row.id, self.upstream))
        return row

    async def deployment(self, workload_id: str | None = None) -> Deployment:
        workload_id = workload_id or (await self.workload(ready=True)).id
        data = DeploymentCreate(name=self.name("deployment"), workload_id=workload_id)
        async with self.app.state.context.sessions() as session, session.begin():
            return await deployments.create_deployment(session, data, ADMIN)

    async def secret(self) -> Secret:
        data = SecretCreate.model_validate({"name": self.name("secret"), "value": "v4lue"})
        keyring = load_keyring(self.settings)
        async with self.app.state.context.sessions() as session, session.begin():
            return await secrets.create_secret(session, data, ADMIN, keyring)

    async def settle(self) -> None:
        """Stop every workload that runs or starts (without waiting): what a test started
        must not keep the engine busy for the tests after it."""
        async with self.app.state.context.sessions() as session:
            active = list(
                await session.scalars(select(Workload.id).where(Workload.status.in_(ACTIVE)))
            )
        for workload_id in active:
            await self.admin.post(f"/api/v2/console/workloads/{workload_id}/stop/")


async def _echo(request: web.Request) -> web.Response:
    return web.Response(text=f"{request.method} {request.path}")


@asynccontextmanager
async def governed_stack(
    settings: Settings, temporal: Client, task_queue: str, docker_url: str, image: str
) -> AsyncIterator[GovernedStack]:
    settings = settings.model_copy(
        update={
            "temporal_task_queue": task_queue,
            "docker_url": docker_url,
            "ready_timeout_seconds": 3600,
            "update_timeout_seconds": 30,
        }
    )
    runtime = build_runtime(settings)
    assert runtime is not None
    async with AsyncExitStack() as stack:
        stack.push_async_callback(runtime.close)
        upstream = await stack.enter_async_context(aiohttp_server(answering(_echo)))
        app = create_app(settings, temporal_client=temporal)
        await stack.enter_async_context(app.router.lifespan_context(app))
        context = app.state.context
        # Registered before the worker, so it runs once the worker has stopped: then no
        # supervisor recreates what is removed.
        stack.push_async_callback(_remove_containers, context, runtime)
        worker = build_worker(temporal, settings, context.sessions, runtime, context.bundles)
        await stack.enter_async_context(worker)
        gateway = await stack.enter_async_context(gateway_in_loop(settings))
        admin = await stack.enter_async_context(client_for(app, ADMIN_KEY, gateway=gateway.url))
        yield GovernedStack(
            app=app,
            admin=admin,
            upstream=upstream,
            gateway=gateway.url,
            settings=settings,
            image=image,
        )


async def _remove_containers(context: Any, runtime: Any) -> None:
    async with context.sessions() as session:
        ids = list(await session.scalars(select(Workload.id)))
    for workload_id in ids:
        await runtime.remove(workload_id)
