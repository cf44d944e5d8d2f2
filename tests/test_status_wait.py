"""`GET /workloads/{id}/?waitForStatus=...`: the answer comes when the status is written (by
another session, as the worker writes it), not at the end of the wait; on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from catalog.tables import Workload
from client import AsyncClient
from config.settings import Settings
from models.status import WorkloadStatus
from services import workloads
from services.status_watch import CatalogStatuses, StatusWatch
from tests.conftest import ADMIN_KEY, client_for
from tests.factories import registered_workload
from tests.support.processes import ApiProcess

WORKLOADS = "/api/v2/console/workloads/"
Params = Mapping[str, str | float | list[str]]


async def _workload(app: FastAPI) -> str:
    async with app.state.context.sessions() as session, session.begin():
        return (await registered_workload(session)).id


async def _set_status(app: FastAPI, workload_id: str, status: WorkloadStatus) -> None:
    async with app.state.context.sessions() as session, session.begin():
        await session.execute(
            update(Workload).where(Workload.id == workload_id).values(status=status)
        )


async def _until_waiting(watch: StatusWatch, count: int) -> None:
    async with asyncio.timeout(10):
        while watch.waiting < count:  # noqa: ASYNC110  # counted by the watch
            await asyncio.sleep(0.01)


async def test_a_wait_answers_when_the_status_is_written(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    watch: StatusWatch = app.state.context.status_watch
    workload_id = await _workload(app)
    params: Params = {"waitForStatus": ["running", "errored"], "waitSeconds": 30}
    waiting = asyncio.create_task(api.get(f"{WORKLOADS}{workload_id}/", params=params))
    await _until_waiting(watch, 1)
    await _set_status(app, workload_id, "initializing")  # not one it waits for
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await _set_status(app, workload_id, "running")
    # Far sooner than the 30 s it may wait: it answered because of the write.
    async with asyncio.timeout(5):
        response = await waiting
    assert response.status_code == 200
    assert response.json()["status"] == "running"
    assert watch.waiting == 0


async def test_a_wait_ends_with_its_seconds_and_shows_the_status_then(
    api: httpx.AsyncClient, app: FastAPI
) -> None:
    workload_id = await _workload(app)
    params: Params = {"waitForStatus": "running", "waitSeconds": 0.2}
    response = await api.get(f"{WORKLOADS}{workload_id}/", params=params)
    assert response.status_code == 200
    assert response.json()["status"] == "submitted"


async def test_a_status_already_reached_answers_at_once(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    workload_id = await _workload(app)
    params: Params = {"waitForStatus": "submitted", "waitSeconds": 30}
    async with asyncio.timeout(5):
        response = await api.get(f"{WORKLOADS}{workload_id}/", params=params)
    assert response.json()["status"] == "submitted"


async def test_a_workload_deleted_during_the_wait_is_a_404(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    watch: StatusWatch = app.state.context.status_watch
    workload_id = await _workload(app)
    params: Params = {"waitForStatus": "running", "waitSeconds": 30}
    waiting = asyncio.create_task(api.get(f"{WORKLOADS}{workload_id}/", params=params))
    await _until_waiting(watch, 1)
    async with app.state.context.sessions() as session, session.begin():
        await workloads.forget_workload(session, workload_id)
    async with asyncio.timeout(5):
        response = await waiting
    assert response.status_code == 404


async def test_no_one_waits_on_what_they_cannot_read(app: FastAPI, api: httpx.AsyncClient) -> None:
    """A viewer without a role on the workload gets the 404 of a plain GET, without waiting."""
    watch: StatusWatch = app.state.context.status_watch
    workload_id = await _workload(app)
    made = await api.post(
        "/api/v2/apiKeys/", json={"name": "v", "username": "victor", "role": "viewer"}
    )
    params: Params = {"waitForStatus": "running", "waitSeconds": 30}
    async with client_for(app, made.json()["key"]) as victor, asyncio.timeout(5):
        response = await victor.get(f"{WORKLOADS}{workload_id}/", params=params)
    assert response.status_code == 404
    assert watch.waiting == 0


async def test_wait_parameters_are_checked(app: FastAPI, api: httpx.AsyncClient) -> None:
    workload_id = await _workload(app)
    url = f"{WORKLOADS}{workload_id}/"
    cases: list[tuple[Params, str]] = [
        ({"waitForStatus": "running", "waitSeconds": 31}, "waitSeconds"),
        ({"waitForStatus": "running", "waitSeconds": -1}, "waitSeconds"),
        ({"waitForStatus": "sleeping"}, "waitForStatus"),
    ]
    for params, field in cases:
        response = await api.get(url, params=params)
        assert response.status_code == 422, params
        assert [d["loc"][:2] for d in response.json()["detail"]] == [["query", field]]


async def test_many_waits_end_with_their_writes(app: FastAPI, api: httpx.AsyncClient) -> None:
    """A hundred requests wait at once (one query a round serves them all); each answers
    when its own workload runs."""
    watch: StatusWatch = app.state.context.status_watch
    ids = [await _workload(app) for _ in range(100)]
    params: Params = {"waitForStatus": "running", "waitSeconds": 30}
    waits = [asyncio.create_task(api.get(f"{WORKLOADS}{i}/", params=params)) for i in ids]
    await _until_waiting(watch, len(ids))
    for workload_id in ids[:50]:
        await _set_status(app, workload_id, "running")
    async with asyncio.timeout(10):
        answered = await asyncio.gather(*waits[:50])
    assert {r.json()["status"] for r in answered} == {"running"}
    assert not any(w.done() for w in waits[50:])
    for wait in waits[50:]:
        wait.cancel()


async def test_a_full_watch_answers_at_once(app: FastAPI) -> None:
    """Beyond its capacity a process does not hold more requests: they answer as a plain
    GET would, and the client polls."""
    watch = StatusWatch(CatalogStatuses(app.state.context.sessions), capacity=1)
    watch.start()
    first_id, second_id = await _workload(app), await _workload(app)
    try:
        first = asyncio.create_task(watch.wait(first_id, ["running"], 30))
        await _until_waiting(watch, 1)
        async with asyncio.timeout(5):
            await watch.wait(second_id, ["running"], 30)
        assert not first.done()
        first.cancel()
    finally:
        await watch.stop()


class _Recording(httpx.AsyncBaseTransport):
    def __init__(self, app: FastAPI) -> None:
        self.app = httpx.ASGITransport(app=app)
        self.sent: list[httpx.QueryParams] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.url.params)
        return await self.app.handle_async_request(request)


async def test_the_client_holds_its_readings_on_the_server(app: FastAPI) -> None:
    """`wait_until` asks the server to hold each reading for its pause, and so returns on the
    write rather than at its next poll (interval 5 s here)."""
    watch: StatusWatch = app.state.context.status_watch
    workload_id = await _workload(app)
    transport = _Recording(app)
    async with AsyncClient("http://testserver", ADMIN_KEY, transport=transport) as wapi:
        waiting = asyncio.create_task(wapi.workloads.wait_until(workload_id, interval=5))
        await _until_waiting(watch, 1)  # a reading held by the server
        await _set_status(app, workload_id, "running")
        async with asyncio.timeout(5):
            assert (await waiting).status == "running"
    first, *held = transport.sent
    assert first.get("waitSeconds") == "0.0"
    assert held and all(
        p.get_list("waitForStatus") == ["errored", "running", "stopped"] for p in held
    )


async def test_a_stopping_api_answers_its_held_reads(
    app: FastAPI, settings: Settings, tmp_path: Path
) -> None:
    """`wapi api` on SIGTERM answers a GET still waiting for a status (30 s here) at once,
    with the status as it is, and exits."""
    workload_id = await _workload(app)
    unreachable = settings.model_copy(update={"temporal_address": "127.0.0.1:1"})
    api = ApiProcess(unreachable, tmp_path / "api.log")
    api.start()
    try:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=60) as http:
            async with asyncio.timeout(60):
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    await asyncio.sleep(0.1)
            params: Params = {"waitForStatus": "running", "waitSeconds": 30}
            held = asyncio.create_task(http.get(f"{WORKLOADS}{workload_id}/", params=params))
            await asyncio.sleep(1)  # the GET is waiting
            assert not held.done()
            assert api.process is not None
            api.process.terminate()
            async with asyncio.timeout(10):
                response = await held
            assert response.status_code == 200
            assert response.json()["status"] == "submitted"
            exit_code = await asyncio.to_thread(api.process.wait, 20)
            assert exit_code in (0, -signal.SIGTERM)  # uvicorn raises the signal again
    finally:
        api.kill()
