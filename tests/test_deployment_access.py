"""Who may do what with a deployment: every deployment route against every kind of caller.

Callers: admin; editor and viewer keys with no role on the deployment; owner (editor key),
user and consumer (viewer keys) by sharing; no key; a revoked key; and an invoke token.
Temporal is unreachable in these tests, so calls that get past authorisation and reach a
workflow answer 503: what matters here is who is let through and who is not. Invoke calls go
to the gateway (its own process in production, here in the test's event loop) on the same
catalog; the deployment's workload has no ready replica, so a call let through answers 503.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.gateway.directory import ReplicaDirectory, Target
from config.settings import Settings
from models.deployments import DeploymentCreate, RoleChange
from services import deployment_access, deployments
from tests.conftest import ADMIN_KEY, client_for
from tests.factories import ready_replica, registered_workload
from tests.support.gateway import gateway_in_loop
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
    ("GET", D + "stats/"): READ,
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
            session, DeploymentCreate(name="prod", workload_id=workload), "owner"
        )
        await deployment_access.change_roles(
            session,
            deployment.id,
            [
                RoleChange(username="user", role="user"),
                RoleChange(username="consumer", role="consumer"),
            ],
            "owner",
        )
        _, token = await deployment_access.create_token(session, deployment.id, "t", "owner")
        # The revoke route gets a token of its own, so the one used to invoke stays valid.
        victim, _ = await deployment_access.create_token(session, deployment.id, "v", "owner")
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


@pytest.fixture
async def gateway_url(settings: Settings) -> AsyncIterator[str]:
    async with gateway_in_loop(settings) as running:
        yield running.url


def client_to(app: FastAPI, gateway: str, template: str, key: str | None) -> httpx.AsyncClient:
    """The management API in process, or the gateway for invoke routes."""
    if not template.startswith("/api/v2/endpoints/"):
        return client_for(app, key)
    return httpx.AsyncClient(
        base_url=gateway, headers={"Authorization": f"Bearer {key}"} if key else {}
    )


async def test_every_caller_on_every_route(
    app: FastAPI, world: dict[str, str], gateway_url: str
) -> None:
    failures = []
    for (method, template), expected in EXPECTED.items():
        callers = {**expected, "none": 401, "revoked": 401}
        if template.startswith("/api/v2/endpoints/"):
            callers["token"] = "ok"
        for caller, outcome in callers.items():
            body = BODIES.get((method, template))
            async with client_to(app, gateway_url, template, world.get(caller)) as client:
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


async def test_token_is_scoped_to_one_deployment(
    app: FastAPI, world: dict[str, str], gateway_url: str
) -> None:
    async with app.state.context.sessions() as session, session.begin():
        other = await deployments.create_deployment(
            session, DeploymentCreate(name="other", workload_id=world["other"]), "owner"
        )
    path = f"/api/v2/endpoints/deployments/{other.id}/healthz"
    async with client_to(app, gateway_url, path, world["token"]) as gateway:
        assert (await gateway.get(path)).status_code == 403
    async with client_for(app, world["token"]) as client:
        # An invoke token is not a management key.
        assert (await client.get(f"/api/v2/console/deployments/{world['id']}/")).status_code == 401
        assert (await client.get("/api/v2/apiKeys/me/")).status_code == 401


async def test_route_table_misses_read_the_catalog(app: FastAPI, world: dict[str, str]) -> None:
    """What the API has just acknowledged takes traffic at once, even when the gateway's
    in-memory route table was reloaded a moment before it was written."""
    directory = ReplicaDirectory(app.state.context.sessions)
    await directory.refresh()
    async with app.state.context.sessions() as session, session.begin():
        fresh = await deployments.create_deployment(
            session, DeploymentCreate(name="fresh", workload_id=world["other"]), "owner"
        )
        session.add(ready_replica(world["other"], "127.0.0.1:9"))
    assert await directory.deployment_target(fresh.id) == Target(world["other"], None)
    assert await directory.addresses(world["other"]) == ("127.0.0.1:9",)
    assert await directory.deployment_target("missing") is None
