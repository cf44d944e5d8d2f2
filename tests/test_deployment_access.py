"""Invoke tokens and the gateway's lookups: a token invokes one deployment and nothing else,
a revoked key is refused, and the gateway keeps serving known callers while the catalog is away.

Who may call which route as which role is in test_access_matrix.py.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI

from catalog import database
from catalog.tables import Deployment
from models.deployments import DeploymentCreate
from models.sharing import RoleChange
from services import deployment_access, deployments, sharing
from tests.conftest import ADMIN_KEY, client_for
from tests.factories import ADMIN, ready_replica, registered_workload
from tests.support.upstream import aiohttp_server, answering
from tests.test_auth import make_key


async def registered_workload_id(app: FastAPI, name: str) -> str:
    async with app.state.context.sessions() as session, session.begin():
        return (await registered_workload(session, name)).id


@pytest.fixture
async def world(app: FastAPI, api: httpx.AsyncClient) -> dict[str, str]:
    keys = {
        "admin": ADMIN_KEY,
        "editor": await make_key(api, "editor"),
        "viewer": await make_key(api, "viewer"),
    }
    for who, role in (("owner", "editor"), ("user", "viewer"), ("consumer", "viewer")):
        made = await api.post("/api/v2/apiKeys/", json={"name": who, "username": who, "role": role})
        keys[who] = made.json()["key"]
    revoked = (
        await api.post(
            "/api/v2/apiKeys/", json={"name": "r", "username": "owner", "role": "editor"}
        )
    ).json()
    await api.delete(f"/api/v2/apiKeys/{revoked['id']}/")
    keys["revoked"] = revoked["key"]

    workload, other, spare = [await registered_workload_id(app, n) for n in ("a", "b", "c")]
    async with app.state.context.sessions() as session, session.begin():
        deployment = await deployments.create_deployment(
            session, DeploymentCreate(name="prod", workload_id=workload), ADMIN
        )
        await sharing.change_roles(
            session,
            "deployment",
            deployment.id,
            [
                RoleChange(username="user", role="user"),
                RoleChange(username="consumer", role="consumer"),
                RoleChange(username="owner", role="owner"),
                RoleChange(username="admin", role=None),
            ],
            "owner",
        )
        _, token = await deployment_access.create_token(session, deployment.id, "t", "owner")
        # The revoke route gets a token of its own, so the one used to invoke stays valid.
        victim, _ = await deployment_access.create_token(session, deployment.id, "v", "owner")
    await app.state.context.directory.refresh()
    return {
        **keys,
        "token": token,
        "id": deployment.id,
        "token_id": victim.id,
        "workload": spare,
        "other": other,
    }


def fill(template: str, world: dict[str, str]) -> str:
    return re.sub(
        r"\{(\w+)\}", lambda m: world["token_id" if m.group(1) == "token" else m.group(1)], template
    )


async def test_token_is_scoped_to_one_deployment(app: FastAPI, world: dict[str, str]) -> None:
    async with app.state.context.sessions() as session, session.begin():
        other = await deployments.create_deployment(
            session, DeploymentCreate(name="other", workload_id=world["other"]), ADMIN
        )
    await app.state.context.directory.refresh()
    async with client_for(app, world["token"]) as client:
        elsewhere = await client.get(f"/api/v2/endpoints/deployments/{other.id}/healthz")
        assert elsewhere.status_code == 403
        # An invoke token is not a management key.
        assert (await client.get(f"/api/v2/console/deployments/{world['id']}/")).status_code == 401
        assert (await client.get("/api/v2/apiKeys/me/")).status_code == 401


async def test_route_table_misses_read_the_catalog(app: FastAPI, world: dict[str, str]) -> None:
    """What the API has just acknowledged takes traffic at once, even when the in-memory route
    table was reloaded a moment before it was written."""
    directory = app.state.context.directory
    await directory.refresh()
    async with app.state.context.sessions() as session, session.begin():
        fresh = await deployments.create_deployment(
            session, DeploymentCreate(name="fresh", workload_id=world["other"]), ADMIN
        )
        session.add(ready_replica(world["other"], "127.0.0.1:9"))
    assert await directory.deployment_target(fresh.id) == world["other"]
    assert await directory.addresses(world["other"]) == ["127.0.0.1:9"]
    assert await directory.deployment_target("missing") is None


async def test_known_callers_are_served_while_the_catalog_is_away(
    app: FastAPI, world: dict[str, str]
) -> None:
    """Route table and credentials keep their last answers: the gateway stays up."""
    stack = AsyncExitStack()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    upstream = await stack.enter_async_context(aiohttp_server(answering(hello, method="GET")))
    context = app.state.context
    async with context.sessions() as session, session.begin():
        row = await session.get(Deployment, world["id"])
        assert row is not None
        workload = row.workload_id
        session.add(ready_replica(workload, upstream))
    await context.directory.refresh()
    url = f"/api/v2/endpoints/deployments/{world['id']}/hi"
    nowhere = database.create_engine("postgresql+asyncpg://wapi:x@127.0.0.1:1/catalog")
    saved = context.directory.sessions, context.credentials.sessions
    try:
        async with client_for(app, world["token"]) as client:
            assert (await client.get(url)).text == "hello"
            context.directory.sessions = database.create_read_sessionmaker(nowhere)
            context.credentials.sessions = database.create_read_sessionmaker(nowhere)
            await asyncio.sleep(0.6)  # past the credential cache's half second
            for _ in range(3):
                answer = await client.get(url)
                assert answer.status_code == 200 and answer.text == "hello"
    finally:
        context.directory.sessions, context.credentials.sessions = saved
        await nowhere.dispose()
        await stack.aclose()
