"""Who may do what with a deployment: every deployment route against every kind of caller.

Callers: admin; editor and viewer keys with no role on the deployment; owner (editor key),
user and consumer (viewer keys) by sharing; no key; a revoked key; and an invoke token.
Temporal is unreachable in these tests, so calls that get past authorisation and reach a
workflow answer 503: what matters here is who is let through and who is not.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI

from catalog import database
from catalog.tables import Deployment
from models.deployments import DeploymentCreate
from models.sharing import RoleChange
from services import access, deployment_access, deployments
from tests.conftest import ADMIN_KEY, client_for
from tests.factories import ADMIN, ready_replica, registered_workload
from tests.support.upstream import aiohttp_server, answering
from tests.test_auth import make_key

D = "/api/v2/console/deployments/{id}/"
READ = {"admin": "ok", "owner": "ok", "user": "ok", "consumer": 403, "editor": 404, "viewer": 404}
MANAGE = {"admin": "ok", "owner": "ok", "user": 403, "consumer": 403, "editor": 404, "viewer": 403}
INVOKE = {
    "admin": "ok",
    "owner": "ok",
    "user": "ok",
    "consumer": "ok",
    "editor": 403,
    "viewer": 403,
}
EXPECTED: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/api/v2/console/deployments/"): dict.fromkeys(READ, "ok"),
    ("POST", "/api/v2/console/deployments/"): {
        **dict.fromkeys(READ, "ok"),
        "viewer": 403,
        "user": 403,
        "consumer": 403,
    },
    ("GET", D): READ,
    ("PATCH", D): MANAGE,
    ("DELETE", D): MANAGE,
    ("POST", D + "swap/"): MANAGE,
    ("DELETE", D + "swap/"): MANAGE,
    ("GET", D + "swaps/"): READ,
    ("GET", D + "health/"): READ,
    ("GET", D + "events/"): READ,
    ("POST", D + "tokens/"): MANAGE,
    ("GET", D + "tokens/"): MANAGE,
    ("DELETE", D + "tokens/{token}/"): MANAGE,
    ("GET", D + "sharedRoles/"): READ,
    ("PATCH", D + "sharedRoles/"): MANAGE,
    ("GET", "/api/v2/endpoints/deployments/{id}/healthz"): INVOKE,
    ("POST", "/api/v2/endpoints/deployments/{id}/echo"): INVOKE,
}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v2/console/deployments/"): {"name": "d", "workloadId": "{workload}"},
    ("PATCH", D): {"description": "changed"},
    ("POST", D + "swap/"): {"workloadId": "{other}"},
    ("POST", D + "tokens/"): {"name": "t"},
    ("PATCH", D + "sharedRoles/"): {"roles": [{"username": "zed", "role": "consumer"}]},
}


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
        await access.change_roles(
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


async def test_the_matrix_covers_every_deployment_route(app: FastAPI) -> None:
    documented = {
        (method.upper(), path.replace("{deploymentId}", "{id}").replace("{tokenId}", "{token}"))
        for path, operations in app.openapi()["paths"].items()
        if "/deployments" in path
        for method in operations
    }
    listed = {(m, re.sub(r"/(healthz|echo)$", "/{path}", p)) for m, p in EXPECTED}
    invoke = {(m, p) for m, p in documented if "{path}" in p and m in ("GET", "POST")}
    assert {(m, p) for m, p in documented if "{path}" not in p} | invoke == listed


async def test_every_caller_on_every_route(app: FastAPI, world: dict[str, str]) -> None:
    failures = []
    for (method, template), expected in EXPECTED.items():
        callers = {**expected, "none": 401, "revoked": 401}
        if template.startswith("/api/v2/endpoints/"):
            callers["token"] = "ok"
        for caller, outcome in callers.items():
            body = BODIES.get((method, template))
            async with client_for(app, world.get(caller)) as client:
                response = await client.request(
                    method,
                    fill(template, world),
                    json={k: fill(v, world) if isinstance(v, str) else v for k, v in body.items()}
                    if body
                    else None,
                )
            hidden = response.status_code == 404 and "was not found" in response.text
            got: Any = (
                "ok"
                if response.status_code not in (401, 403) and not hidden
                else response.status_code
            )
            if got != outcome:
                failures.append(
                    f"{method} {template} as {caller}: {response.status_code} {response.text[:120]}"
                )
    assert failures == []


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
