"""One error shape for every failure, and bad input never reaches the database."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from catalog import database
from tests.factories import artifact

ARTIFACTS = "/api/v2/registry/artifacts/"


async def test_malformed_json(api: httpx.AsyncClient) -> None:
    response = await api.post(
        ARTIFACTS, content=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_input" and body["detail"][0]["type"] == "json_invalid"
    assert body["requestId"] == response.headers["x-request-id"]


async def test_nul_characters_are_refused(api: httpx.AsyncClient) -> None:
    response = await api.post(ARTIFACTS, json=artifact(name="a\x00b"))
    assert response.status_code == 422
    env = artifact()
    env["spec"]["containerGroups"][0]["containers"][0]["environmentVars"] = [
        {"name": "A", "value": "x\x00"}
    ]
    assert (await api.post(ARTIFACTS, json=env)).status_code == 422
    assert (await api.get(ARTIFACTS, params={"search": "\x00"})).status_code == 422


async def test_unknown_route_and_method(api: httpx.AsyncClient) -> None:
    missing = await api.get("/api/v2/nothing-here/")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    wrong = await api.request("PATCH", ARTIFACTS)
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"


async def test_request_id_is_echoed(api: httpx.AsyncClient) -> None:
    response = await api.get(ARTIFACTS, headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    generated = await api.get(ARTIFACTS, headers={"X-Request-ID": "x" * 500})
    assert len(generated.headers["x-request-id"]) == 16


async def test_validation_errors_do_not_echo_input(api: httpx.AsyncClient) -> None:
    body = artifact()
    body["spec"]["containerGroups"][0]["containers"][0]["environmentVars"] = [
        {"name": "TOKEN", "value": 12345, "secretish": "hunter2"}
    ]
    response = await api.post(ARTIFACTS, json=body)
    assert response.status_code == 422
    assert "hunter2" not in response.text and "12345" not in response.text


async def test_huge_numbers_are_422(api: httpx.AsyncClient) -> None:
    body = artifact()
    body["spec"]["containerGroups"][0]["containers"][0]["port"] = 10**30
    assert (await api.post(ARTIFACTS, json=body)).status_code == 422
    assert (await api.get(ARTIFACTS, params={"offset": 10**30})).status_code == 422


async def test_an_unreachable_catalog_is_a_503(app: FastAPI, api: httpx.AsyncClient) -> None:
    """Not a 500: the client is told to retry, and why."""
    nowhere = database.create_engine("postgresql+asyncpg://wapi:x@127.0.0.1:1/catalog")
    context = app.state.context
    saved = context.sessions, context.credentials.sessions
    context.sessions = database.create_sessionmaker(nowhere)
    context.credentials.sessions = database.create_read_sessionmaker(nowhere)
    try:
        response = await api.get(ARTIFACTS)
    finally:
        context.sessions, context.credentials.sessions = saved
        await nowhere.dispose()
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["code"] == "catalog_unavailable"
    assert (await api.get(ARTIFACTS)).status_code == 200
