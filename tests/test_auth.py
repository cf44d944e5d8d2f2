"""Authentication and the role matrix over every management route."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from config.settings import Settings
from tests.conftest import client_for
from tests.factories import artifact
from tests.support.gateway import gateway_in_loop

# Every route under /api/v2 and the least role that may call it. A new route must be added here.
REQUIRED_ROLE: dict[tuple[str, str], str] = {
    ("POST", "/api/v2/registry/artifacts/"): "editor",
    ("GET", "/api/v2/registry/artifacts/"): "viewer",
    ("GET", "/api/v2/registry/artifacts/{artifactId}/"): "viewer",
    ("PATCH", "/api/v2/registry/artifacts/{artifactId}/"): "editor",
    ("PUT", "/api/v2/registry/artifacts/{artifactId}/"): "editor",
    ("DELETE", "/api/v2/registry/artifacts/{artifactId}/"): "editor",
    ("POST", "/api/v2/registry/artifacts/{artifactId}/clone/"): "editor",
    ("GET", "/api/v2/registry/artifactCollections/"): "viewer",
    ("GET", "/api/v2/registry/artifactCollections/{collectionId}/"): "viewer",
    ("GET", "/api/v2/registry/artifactCollections/{collectionId}/versions/"): "viewer",
    ("POST", "/api/v2/console/workloads/"): "editor",
    ("GET", "/api/v2/console/workloads/"): "viewer",
    ("GET", "/api/v2/console/workloads/{workloadId}/"): "viewer",
    ("PATCH", "/api/v2/console/workloads/{workloadId}/"): "editor",
    ("DELETE", "/api/v2/console/workloads/{workloadId}/"): "editor",
    ("POST", "/api/v2/console/workloads/{workloadId}/start/"): "editor",
    ("POST", "/api/v2/console/workloads/{workloadId}/stop/"): "editor",
    ("GET", "/api/v2/console/workloads/{workloadId}/events/"): "viewer",
    ("GET", "/api/v2/console/workloads/{workloadId}/replicas/"): "viewer",
    ("GET", "/api/v2/console/workloads/{workloadId}/scaling/"): "viewer",
    ("GET", "/api/v2/console/workloads/{workloadId}/logs/"): "viewer",
    ("POST", "/api/v2/console/workloads/{workloadId}/replacement/"): "editor",
    ("GET", "/api/v2/console/workloads/{workloadId}/replacement/"): "viewer",
    ("DELETE", "/api/v2/console/workloads/{workloadId}/replacement/"): "editor",
    ("POST", "/api/v2/console/deployments/"): "editor",
    ("GET", "/api/v2/console/deployments/"): "viewer",
    ("GET", "/api/v2/console/deployments/{deploymentId}/"): "viewer",
    ("PATCH", "/api/v2/console/deployments/{deploymentId}/"): "editor",
    ("DELETE", "/api/v2/console/deployments/{deploymentId}/"): "editor",
    ("POST", "/api/v2/console/deployments/{deploymentId}/swap/"): "editor",
    ("DELETE", "/api/v2/console/deployments/{deploymentId}/swap/"): "editor",
    ("GET", "/api/v2/console/deployments/{deploymentId}/swaps/"): "viewer",
    ("POST", "/api/v2/console/deployments/{deploymentId}/rollouts/"): "editor",
    ("GET", "/api/v2/console/deployments/{deploymentId}/rollouts/"): "viewer",
    ("GET", "/api/v2/console/deployments/{deploymentId}/rollouts/{rolloutId}/"): "viewer",
    ("POST", "/api/v2/console/deployments/{deploymentId}/rollouts/{rolloutId}/promote/"): "editor",
    ("POST", "/api/v2/console/deployments/{deploymentId}/rollouts/{rolloutId}/pause/"): "editor",
    ("POST", "/api/v2/console/deployments/{deploymentId}/rollouts/{rolloutId}/resume/"): "editor",
    ("POST", "/api/v2/console/deployments/{deploymentId}/rollouts/{rolloutId}/abort/"): "editor",
    ("GET", "/api/v2/console/deployments/{deploymentId}/health/"): "viewer",
    ("GET", "/api/v2/console/deployments/{deploymentId}/stats/"): "viewer",
    ("GET", "/api/v2/console/deployments/{deploymentId}/events/"): "viewer",
    ("POST", "/api/v2/console/deployments/{deploymentId}/tokens/"): "editor",
    ("GET", "/api/v2/console/deployments/{deploymentId}/tokens/"): "editor",
    ("DELETE", "/api/v2/console/deployments/{deploymentId}/tokens/{tokenId}/"): "editor",
    ("GET", "/api/v2/resourceBundles/"): "viewer",
    ("GET", "/api/v2/resourceBundles/{bundleId}/"): "viewer",
    ("GET", "/api/v2/mlops/compute/bundles/"): "viewer",
    ("POST", "/api/v2/apiKeys/"): "admin",
    ("GET", "/api/v2/apiKeys/"): "admin",
    ("GET", "/api/v2/apiKeys/me/"): "viewer",
    ("GET", "/api/v2/apiKeys/{keyId}/"): "admin",
    ("DELETE", "/api/v2/apiKeys/{keyId}/"): "admin",
    ("POST", "/api/v2/secrets/"): "editor",
    ("GET", "/api/v2/secrets/"): "viewer",
    ("GET", "/api/v2/secrets/{secretId}/"): "viewer",
    ("POST", "/api/v2/secrets/{secretId}/rotate/"): "editor",
    ("DELETE", "/api/v2/secrets/{secretId}/"): "editor",
    ("GET", "/api/v2/auditEvents/"): "admin",
    ("GET", "/api/v2/auditEvents/verify/"): "admin",
}
for _path in (
    "/api/v2/registry/artifacts/{artifactId}/sharedRoles/",
    "/api/v2/registry/artifactCollections/{collectionId}/sharedRoles/",
    "/api/v2/console/workloads/{workloadId}/sharedRoles/",
    "/api/v2/console/deployments/{deploymentId}/sharedRoles/",
    "/api/v2/secrets/{secretId}/sharedRoles/",
):
    REQUIRED_ROLE[("GET", _path)] = "viewer"
    REQUIRED_ROLE[("PATCH", _path)] = "editor"
# Invoke routes are documented by the management API and served by the gateway, a process of
# its own: the same matrix runs against the gateway.
INVOKE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
GATEWAY_ROLE: dict[tuple[str, str], str] = {}
for _method in INVOKE_METHODS:
    # Invoking needs a role on the workload or deployment (see test_access_matrix.py); on one
    # nobody shares with them, only admins get past authorisation.
    GATEWAY_ROLE[(_method, "/api/v2/endpoints/workloads/{workloadId}/{path}")] = "admin"
    GATEWAY_ROLE[(_method, "/api/v2/endpoints/deployments/{deploymentId}/{path}")] = "admin"
RANK = {"viewer": 0, "editor": 1, "admin": 2}
UNAUTHENTICATED = ("GET /healthz", "GET /readyz", "GET /metrics")


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v2/")
        for method in operations
    }


async def make_key(api: httpx.AsyncClient, role: str) -> str:
    response = await api.post(
        "/api/v2/apiKeys/", json={"name": role, "username": role, "role": role}
    )
    assert response.status_code == 201
    key: str = response.json()["key"]
    return key


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "0000", path)


async def test_every_route_is_in_the_matrix(app: FastAPI) -> None:
    assert api_routes(app) == set(REQUIRED_ROLE) | set(GATEWAY_ROLE)


async def callers(api: httpx.AsyncClient) -> dict[str, str | None]:
    keys: dict[str, str | None] = {role: await make_key(api, role) for role in RANK}
    revoked = await make_key(api, "editor")
    revoked_id = (await api.get("/api/v2/apiKeys/", params={"limit": 100})).json()["data"][-1]["id"]
    assert (await api.delete(f"/api/v2/apiKeys/{revoked_id}/")).status_code == 200
    return {**keys, "none": None, "bad": "wapi_not-a-real-key", "revoked": revoked}


async def test_role_matrix(app: FastAPI, api: httpx.AsyncClient) -> None:
    await check_matrix(REQUIRED_ROLE, await callers(api), lambda key: client_for(app, key))


async def test_role_matrix_of_the_gateway(
    app: FastAPI, api: httpx.AsyncClient, settings: Settings
) -> None:
    keys = await callers(api)
    async with gateway_in_loop(settings) as gateway:

        def client(key: str | None) -> httpx.AsyncClient:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            return httpx.AsyncClient(base_url=gateway.url, headers=headers)

        await check_matrix(GATEWAY_ROLE, keys, client)


async def test_invoke_calls_sent_to_the_management_api_are_pointed_at_the_gateway(
    app: FastAPI, settings: Settings
) -> None:
    async with client_for(app, None) as client:
        for method, path in GATEWAY_ROLE:
            response = await client.request(method, concrete(path))
            assert response.status_code == 421, (method, path)
            if method != "HEAD":
                assert settings.public_gateway_url + concrete(path) in response.json()["message"]


async def check_matrix(
    matrix: dict[tuple[str, str], str],
    keys: dict[str, str | None],
    client_for: Callable[[str | None], httpx.AsyncClient],
) -> None:
    for (method, path), needed in matrix.items():
        for caller, key in keys.items():
            async with client_for(key) as client:
                body: dict[str, object] | None = {} if method in ("POST", "PUT", "PATCH") else None
                response = await client.request(method, concrete(path), json=body)
            where = f"{method} {path} as {caller}: {response.status_code} {response.text[:200]}"
            if caller in ("none", "bad", "revoked"):
                assert response.status_code == 401, where
                assert response.headers["www-authenticate"] == "Bearer"
            elif RANK[caller] < RANK[needed]:
                assert response.status_code == 403, where
                if method != "HEAD":  # a HEAD answer has no body
                    assert response.json()["code"] == "permission_denied"
            else:
                assert response.status_code not in (401, 403), where


@pytest.mark.parametrize("route", UNAUTHENTICATED)
async def test_health_and_metrics_need_no_key(app: FastAPI, route: str) -> None:
    method, path = route.split()
    async with client_for(app, None) as client:
        response = await client.request(method, path)
    assert response.status_code in (200, 503)


async def test_keys_are_shown_once_and_stored_hashed(api: httpx.AsyncClient, app: FastAPI) -> None:
    created = (
        await api.post("/api/v2/apiKeys/", json={"name": "ci", "username": "bob", "role": "editor"})
    ).json()
    key = created["key"]
    assert key.startswith("wapi_") and created["prefix"] == key[:11]
    listed = (await api.get(f"/api/v2/apiKeys/{created['id']}/")).json()
    assert "key" not in listed and key not in str((await api.get("/api/v2/apiKeys/")).json())
    async with app.state.context.engine.connect() as conn:
        from sqlalchemy import text

        stored = [tuple(row) for row in await conn.execute(text("SELECT * FROM api_keys"))]
    assert key not in str(stored)

    async with client_for(app, key) as bob:
        me = (await bob.get("/api/v2/apiKeys/me/")).json()
        assert me["username"] == "bob" and me["role"] == "editor"
        made = await bob.post("/api/v2/registry/artifacts/", json=artifact())
        assert made.json()["creator"] == {"id": "bob", "username": "bob", "email": ""}
        assert (await api.delete(f"/api/v2/apiKeys/{created['id']}/")).status_code == 200
        assert (await bob.get("/api/v2/apiKeys/me/")).status_code == 401
    again = await api.delete(f"/api/v2/apiKeys/{created['id']}/")
    assert again.status_code == 409


async def test_an_admin_cannot_revoke_its_own_key(api: httpx.AsyncClient) -> None:
    me = (await api.get("/api/v2/apiKeys/me/")).json()
    response = await api.delete(f"/api/v2/apiKeys/{me['id']}/")
    assert response.status_code == 409


async def test_key_input_is_validated(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v2/apiKeys/", json={"name": "x", "username": "a b", "role": "root"}
    )
    assert response.status_code == 422
    assert {tuple(d["loc"]) for d in response.json()["detail"]} == {
        ("body", "username"),
        ("body", "role"),
    }
