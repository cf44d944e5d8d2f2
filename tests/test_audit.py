"""The audit log through the API, on SQLite and PostgreSQL: what is recorded, that it is
durable when the response arrives, and that tampering with the chain is detected."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Body, FastAPI, Request
from sqlalchemy import select

from api.audit_actions import route_action
from api.deps import Viewer
from catalog.tables import AuditEvent
from tests.conftest import ADMIN_KEY, client_for
from tests.factories import artifact, spec
from tests.test_auth import make_key

ARTIFACTS = "/api/v2/registry/artifacts/"
AUDIT = "/api/v2/auditEvents/"
VERIFY = "/api/v2/auditEvents/verify/"


async def rows(app: FastAPI) -> list[AuditEvent]:
    """Straight from the database, in a session of its own."""
    async with app.state.context.sessions() as session:
        return list(await session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


async def events(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await api.get(AUDIT, params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def verify(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await api.get(VERIFY, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_management_actions_are_recorded_without_values(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    canary = f"canary-{secrets.token_hex(8)}"
    body = artifact(spec=spec(environmentVars=[{"name": "TOKEN", "value": canary}]))
    created = await api.post(ARTIFACTS, json=body)
    assert created.status_code == 201
    artifact_id = created.json()["id"]
    url = f"{ARTIFACTS}{artifact_id}/"
    cloned = await api.post(f"{url}clone/", json={"name": "copy"})
    registered = await api.patch(url, json={"status": "registered"})
    assert (cloned.status_code, registered.status_code) == (201, 200)

    recorded = await events(api)
    assert [e["action"] for e in recorded] == [
        "artifact.create",
        "artifact.clone",
        "artifact.update",
    ]
    first = recorded[0]
    me = (await api.get("/api/v2/apiKeys/me/")).json()
    assert first["actor"] == "admin" and first["actorKind"] == "api_key"
    assert first["resourceType"] == "artifact" and first["resourceId"] == artifact_id
    assert first["requestId"] == created.headers["x-request-id"]
    assert first["sourceIp"] == "127.0.0.1" and first["statusCode"] == 201
    assert first["summary"] == {"fields": ["name", "spec"], "keyId": me["id"]}
    assert first["latencyMs"] >= 0 and first["seq"] == 1 and first["prevHash"] == "0" * 64
    # A clone acts on its source and creates a new artifact: both ids are kept.
    assert recorded[1]["resourceId"] == artifact_id
    assert recorded[1]["summary"]["createdId"] == cloned.json()["id"]
    assert recorded[2]["summary"]["fields"] == ["status"]
    assert canary not in str([row.__dict__ for row in await rows(app)])


async def test_a_created_key_is_recorded_by_id_never_by_value(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    key = await make_key(api, "editor")
    key_id = (await api.get("/api/v2/apiKeys/", params={"limit": 100})).json()["data"][-1]["id"]
    assert (await api.delete(f"/api/v2/apiKeys/{key_id}/")).status_code == 200
    recorded = await events(api)
    assert [(e["action"], e["resourceId"]) for e in recorded] == [
        ("apiKey.create", key_id),  # no Location header: the id comes from the response body
        ("apiKey.revoke", key_id),
    ]
    assert recorded[0]["summary"]["fields"] == ["name", "role", "username"]
    assert key not in str([row.__dict__ for row in await rows(app)])


async def test_refused_and_unrouted_requests_are_recorded(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    viewer = await make_key(api, "viewer")
    async with client_for(app, viewer) as client:
        refused = await client.post(ARTIFACTS, json=artifact())
    invalid = await api.post(ARTIFACTS, json={"name": "x", "spec": {}, "bogus": 1})
    async with client_for(app, None) as client:
        anonymous = await client.delete(f"{ARTIFACTS}nope/")
    unrouted = await api.post("/api/v2/noSuchThing/")
    assert [r.status_code for r in (refused, invalid, anonymous, unrouted)] == [403, 422, 401, 404]

    recorded = await events(api, orderBy="-seq", limit=4)
    assert [(e["action"], e["statusCode"]) for e in reversed(recorded)] == [
        ("artifact.create", 403),
        ("artifact.create", 422),
        ("artifact.delete", 401),
        ("request.unrouted", 404),
    ]
    by_status = {e["statusCode"]: e for e in recorded}
    assert by_status[403]["actor"] == "viewer"
    assert by_status[422]["summary"]["fields"] == ["bogus", "name", "spec"]
    assert by_status[401]["actor"] == "anonymous" and by_status[401]["resourceId"] == "nope"
    assert by_status[404]["summary"]["path"] == "/api/v2/noSuchThing/"
    assert by_status[403]["requestId"] == refused.headers["x-request-id"]


async def test_reads_are_not_recorded(app: FastAPI, api: httpx.AsyncClient) -> None:
    created = (await api.post(ARTIFACTS, json=artifact())).json()
    assert len(await rows(app)) == 1
    await api.get(ARTIFACTS)
    await api.get(f"{ARTIFACTS}{created['id']}/")
    await api.head(ARTIFACTS)
    await api.get(AUDIT)
    await api.request("OPTIONS", ARTIFACTS)
    await api.post(f"/api/v2/endpoints/workloads/{created['id']}/anything")
    assert len(await rows(app)) == 1


async def test_records_are_committed_before_the_response(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    for _ in range(3):
        response = await api.post(ARTIFACTS, json=artifact())
        # No waiting: the row must already be there when the response has arrived.
        request_ids = [row.request_id for row in await rows(app)]
        assert response.headers["x-request-id"] in request_ids


async def test_a_failed_audit_write_is_queued_and_written_later(
    app: FastAPI, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = app.state.context.audit
    failing = True
    append_now = writer.append_now

    async def flaky(entry: object) -> None:
        if failing:
            raise RuntimeError("database gone")
        await append_now(entry)

    monkeypatch.setattr(writer, "append_now", flaky)
    response = await api.post(ARTIFACTS, json=artifact())
    assert response.status_code == 201  # the action is committed: the answer stands
    failing = False
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 30
    while request_id not in [row.request_id for row in await rows(app)]:
        assert time.monotonic() < deadline, "the queued record was never written"
        await asyncio.sleep(0.1)


async def test_a_record_that_cannot_be_queued_is_logged_as_lost(
    app: FastAPI, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    async def broken(_entry: object) -> None:
        raise RuntimeError("database gone")

    writer = app.state.context.audit
    monkeypatch.setattr(writer, "append_now", broken)
    monkeypatch.setattr(writer, "enqueue", lambda _entry: False)  # the queue is full
    with caplog.at_level(logging.ERROR, logger="api.audit"):
        response = await api.post(ARTIFACTS, json=artifact())
    assert response.status_code == 201
    lost = [r for r in caplog.records if "AUDIT RECORD LOST" in r.getMessage()]
    assert len(lost) == 1
    assert lost[0].audit["request_id"] == response.headers["x-request-id"]


async def test_an_unexpected_error_is_recorded_as_500(app: FastAPI) -> None:
    async def boom() -> None:
        raise RuntimeError("bug")

    app.router.add_api_route("/api/v2/booms/", boom, methods=["POST"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/api/v2/booms/", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    last = (await rows(app))[-1]
    assert (last.action, last.status_code, last.request_id) == ("boom.create", 500, "boom-1")


async def test_routes_can_add_to_the_summary(app: FastAPI, api: httpx.AsyncClient) -> None:
    async def register(
        widget_id: str, request: Request, body: Annotated[dict[str, Any], Body()], _: Viewer
    ) -> dict[str, str]:
        request.state.audit_summary = {"status": "registered", "version": 3, "fields": ["x"]}
        return {"id": widget_id}

    app.router.add_api_route("/api/v2/widgets/{widget_id}/register/", register, methods=["POST"])
    response = await api.post("/api/v2/widgets/w1/register/", json={"note": "hi"})
    assert response.status_code == 200
    [entry] = await events(api)
    assert (entry["action"], entry["resourceType"], entry["resourceId"]) == (
        "widget.register",
        "widget",
        "w1",
    )
    # The route's summary is kept, but cannot replace what the middleware observed.
    assert entry["summary"]["status"] == "registered" and entry["summary"]["version"] == 3
    assert entry["summary"]["fields"] == ["note"]


async def test_filters_and_pagination(api: httpx.AsyncClient) -> None:
    ids = [(await api.post(ARTIFACTS, json=artifact())).json()["id"] for _ in range(3)]
    await api.delete(f"{ARTIFACTS}{ids[1]}/")
    assert [e["resourceId"] for e in await events(api, action="artifact.delete")] == [ids[1]]
    assert len(await events(api, resourceId=ids[1])) == 2
    assert len(await events(api, resourceType="artifact", actor="admin")) == 4
    assert await events(api, actor="nobody") == []
    newest = await events(api, orderBy="-seq", limit=2)
    assert [e["seq"] for e in newest] == [4, 3]
    page = (await api.get(AUDIT, params={"limit": 2, "offset": 2})).json()
    assert page["totalCount"] == 4 and [e["seq"] for e in page["data"]] == [3, 4]
    at = newest[1]["at"]
    assert [e["seq"] for e in await events(api, since=at)] == [3, 4]
    assert [e["seq"] for e in await events(api, until=at)] == [1, 2]
    bad = await api.get(AUDIT, params={"since": "0001-01-01T00:00:00+05:00"})
    assert bad.status_code == 422


def test_every_management_route_has_a_readable_action(app: FastAPI) -> None:
    expected = {
        ("POST", "/api/v2/registry/artifacts/"): "artifact.create",
        ("PATCH", "/api/v2/registry/artifacts/{artifactId}/"): "artifact.update",
        ("PUT", "/api/v2/registry/artifacts/{artifactId}/"): "artifact.replace",
        ("DELETE", "/api/v2/registry/artifacts/{artifactId}/"): "artifact.delete",
        ("POST", "/api/v2/registry/artifacts/{artifactId}/clone/"): "artifact.clone",
        ("POST", "/api/v2/console/workloads/"): "workload.create",
        ("PATCH", "/api/v2/console/workloads/{workloadId}/"): "workload.update",
        ("DELETE", "/api/v2/console/workloads/{workloadId}/"): "workload.delete",
        ("POST", "/api/v2/console/workloads/{workloadId}/start/"): "workload.start",
        ("POST", "/api/v2/console/workloads/{workloadId}/stop/"): "workload.stop",
        ("POST", "/api/v2/apiKeys/"): "apiKey.create",
        ("DELETE", "/api/v2/apiKeys/{keyId}/"): "apiKey.revoke",
        ("POST", "/api/v2/console/deployments/{deploymentId}/tokens/"): "token.create",
    }
    assert {route: route_action(*route).action for route in expected} == expected
    readable = re.compile(r"^[a-z][A-Za-z]*\.[a-z][A-Za-z]*$")
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            if path.startswith("/api/v2/") and not path.startswith("/api/v2/endpoints/"):
                action = route_action(method.upper(), path).action
                assert readable.match(action), f"{method.upper()} {path} -> {action}"


async def test_only_admins_read_the_log(app: FastAPI, api: httpx.AsyncClient) -> None:
    editor = await make_key(api, "editor")
    async with client_for(app, editor) as client:
        assert (await client.get(AUDIT)).status_code == 403
        assert (await client.get(VERIFY)).status_code == 403
    async with client_for(app, ADMIN_KEY) as client:
        assert (await client.get(VERIFY)).status_code == 200
