"""An invoke token is not a management key, on every management route.

The route list comes from the app's own OpenAPI document, so a route added later is covered
without editing this file. Every placeholder names a real resource (the token's own deployment,
its workload, a real key, token, secret, collection and artifact): the token is refused because
of what it is, not because the target is missing. Refusals of state-changing calls are audited
(api/audit.py), as an anonymous caller's, and the record holds nothing of the token.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from api.app import create_app
from catalog.tables import Artifact, AuditEvent
from models.deployments import DeploymentCreate
from services import deployment_access, deployments
from tests.conftest import client_for
from tests.factories import ADMIN, registered_workload

INVOKE_PREFIX = "/api/v2/endpoints/"
READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def management_routes() -> list[tuple[str, str]]:
    """Every (method, path) of the management API: under /api/v2, invoke routes left out (they
    are the gateway's, which token scoping tests/test_deployment_access.py covers)."""
    document: dict[str, Any] = create_app().openapi()
    return sorted(
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if path.startswith("/api/v2/") and not path.startswith(INVOKE_PREFIX)
    )


ROUTES = management_routes()


@pytest.fixture
async def ids(app: FastAPI, api: httpx.AsyncClient) -> dict[str, str]:
    """A real value for every path placeholder, plus the token (`token`)."""
    async with app.state.context.sessions() as session, session.begin():
        workload = await registered_workload(session, "scoped")
        deployment = await deployments.create_deployment(
            session, DeploymentCreate(name="prod", workload_id=workload.id), ADMIN
        )
        other, token = await deployment_access.create_token(session, deployment.id, "t", "admin")
        artifact = await session.get(Artifact, workload.artifact_id)
        assert artifact is not None and artifact.collection_id is not None
    key = await api.post("/api/v2/apiKeys/", json={"name": "k", "username": "k", "role": "viewer"})
    secret = await api.post("/api/v2/secrets/", json={"name": "s", "value": "v"})
    assert key.status_code == 201 and secret.status_code == 201, (key.text, secret.text)
    return {
        "token": token,
        "deploymentId": deployment.id,
        "workloadId": workload.id,
        "artifactId": workload.artifact_id,
        "collectionId": artifact.collection_id,
        "tokenId": other.id,
        "keyId": key.json()["id"],
        "secretId": secret.json()["id"],
        "bundleId": "cpu.small",  # one of the built-in bundles
        "rolloutId": "0123456789abcdef01234567",  # refused before it would be looked up
    }


async def latest_audit(app: FastAPI) -> AuditEvent | None:
    async with app.state.context.sessions() as session:
        newest = await session.scalar(select(func.max(AuditEvent.seq)))
        return None if newest is None else await session.get(AuditEvent, newest)


def test_the_route_list_is_the_whole_management_api() -> None:
    # A sanity floor: an empty or truncated document would make the test below vacuous.
    assert len(ROUTES) >= 50, ROUTES
    assert ("POST", "/api/v2/console/deployments/{deploymentId}/tokens/") in ROUTES


async def test_an_invoke_token_is_refused_on_every_management_route(
    app: FastAPI, ids: dict[str, str]
) -> None:
    answered: dict[tuple[str, str], int] = {}
    unaudited: list[tuple[str, str]] = []
    async with client_for(app, ids["token"]) as client:
        for method, path in ROUTES:
            url = re.sub(r"{(\w+)}", lambda m: ids[m.group(1)], path)
            body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
            before = await latest_audit(app)
            response = await client.request(method, url, json=body)
            answered[(method, path)] = response.status_code
            assert ids["token"] not in response.text
            if method in READ_METHODS:
                continue
            record = await latest_audit(app)  # committed before the answer was sent
            if record is None or (before is not None and record.seq == before.seq):
                unaudited.append((method, path))
                continue
            assert record.status_code == 401, (method, path, record.status_code)
            assert (record.actor, record.actor_kind) == ("anonymous", "anonymous")
            assert record.action != "request.unrouted", (method, path)
            assert ids["token"] not in str(record.summary)
    wrong = {route: status for route, status in answered.items() if status != 401}
    assert wrong == {}, f"an invoke token was not refused with 401: {wrong}"
    assert unaudited == [], f"refused without an audit record: {unaudited}"
