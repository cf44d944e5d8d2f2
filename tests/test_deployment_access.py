"""Invoke tokens and the gateway's route lookups: a token invokes one deployment and nothing
else, and what the API has just acknowledged takes traffic at once. Invoke calls go to the
gateway (its own process in production, here in the test's event loop) on the same catalog.

Who may call which route as which role is in test_access_matrix.py; the gateway serving known
callers while the catalog is away is in test_gateway_observability.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from api.gateway.directory import ReplicaDirectory, Target
from config.settings import Settings
from models.deployments import DeploymentCreate
from models.sharing import RoleChange
from services import deployment_access, deployments, sharing
from tests.conftest import ADMIN_KEY, client_for
from tests.factories import ADMIN, ready_replica, registered_workload
from tests.support.gateway import gateway_in_loop
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
    return {
        **keys,
        "token": token,
        "id": deployment.id,
        "token_id": victim.id,
        "workload": spare,
        "other": other,
    }


@pytest.fixture
async def gateway_url(settings: Settings) -> AsyncIterator[str]:
    async with gateway_in_loop(settings) as running:
        yield running.url


async def test_token_is_scoped_to_one_deployment(
    app: FastAPI, world: dict[str, str], gateway_url: str
) -> None:
    async with app.state.context.sessions() as session, session.begin():
        other = await deployments.create_deployment(
            session, DeploymentCreate(name="other", workload_id=world["other"]), ADMIN
        )
    async with client_for(app, world["token"], gateway=gateway_url) as client:
        elsewhere = await client.get(f"/api/v2/endpoints/deployments/{other.id}/healthz")
        assert elsewhere.status_code == 403
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
            session, DeploymentCreate(name="fresh", workload_id=world["other"]), ADMIN
        )
        session.add(ready_replica(world["other"], "127.0.0.1:9"))
    assert await directory.deployment_target(fresh.id) == Target(world["other"], None)
    assert await directory.addresses(world["other"]) == ("127.0.0.1:9",)
    assert await directory.deployment_target("missing") is None
