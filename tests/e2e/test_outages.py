"""Real outages of what the API depends on: a PostgreSQL cluster and a Temporal dev server,
stopped and started again while the API (a `wapi api` process of its own) keeps running.

`/readyz` (the Kubernetes readiness probe) answers 200 with everything up and 503 naming the
part that is down; with the database stopped while clients write, every answer is a success
or a clear 503, the API recovers by itself (stale pooled connections included), and nothing
it acknowledged is lost: the rows, and the audit records written before the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from config.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import eventually
from tests.factories import artifact
from tests.support.postgres import PostgresCluster
from tests.support.processes import ApiProcess, DevServer

ARTIFACTS = "/api/v2/registry/artifacts/"
# Generous: the machine is shared; a dev server may take a while to answer after a start.
WITHIN = 90


@dataclass
class Outages:
    database: PostgresCluster
    temporal: DevServer
    api: ApiProcess
    client: httpx.AsyncClient

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        try:
            response = await self.client.get("/readyz", timeout=10)
        except httpx.HTTPError as error:
            return 0, {"error": repr(error)}
        return response.status_code, response.json()

    async def ready_as(self, status: int, **checks: str) -> dict[str, Any]:
        """Wait for /readyz to answer `status` with each named check starting as given."""

        def matches(answer: tuple[int, dict[str, Any]]) -> bool:
            code, body = answer
            found = body.get("checks", {})
            return code == status and all(
                str(found.get(name, "")).startswith(prefix) for name, prefix in checks.items()
            )

        answer = await eventually(self.readiness, matches, WITHIN, f"/readyz {status} {checks}")
        body: dict[str, Any] = answer[1]
        return body


def start_temporal(server: DevServer, attempts: int = 3) -> None:
    """Start the dev server and wait until its port accepts connections. If it dies at start
    it is started again, as a supervisor would: its own port picking connects to each port it
    picks and panics ("failed assigning ephemeral port") when one refuses, as a port that a
    container published with NAT rules did before the runtime had a publish range."""
    for _ in range(attempts):
        server.start()
        deadline = time.monotonic() + WITHIN
        while time.monotonic() < deadline:
            assert server.process is not None
            if server.process.poll() is not None:
                break  # died at start: try again
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", server.port), timeout=1),
            ):
                return
            time.sleep(0.2)
        else:
            raise AssertionError(f"the Temporal dev server did not listen within {WITHIN} s")
    raise AssertionError(f"the Temporal dev server died at start {attempts} times")


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A cluster of this module's own: stopping the session's would fail other tests."""
    database = PostgresCluster()
    database.start()
    try:
        yield database
    finally:
        database.remove()


@pytest.fixture
async def outages(cluster: PostgresCluster, tmp_path: Path) -> AsyncIterator[Outages]:
    cluster.start_if_stopped()
    temporal = DevServer(tmp_path / "temporal.db", tmp_path / "temporal.log")
    start_temporal(temporal)
    settings = Settings(
        state_dir=tmp_path / "state",
        database_url=cluster.url,
        bootstrap_admin_key=ADMIN_KEY,
        temporal_address=temporal.address,
    )
    api = ApiProcess(settings, tmp_path / "api.log")
    api.start()
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=30) as client:
            stack = Outages(cluster, temporal, api, client)
            await stack.ready_as(200)
            yield stack
    finally:
        api.stop()
        temporal.stop()
        cluster.start_if_stopped()  # the next test starts from a running database


async def test_readyz_names_what_is_down_and_recovers(outages: Outages) -> None:
    ready = await outages.ready_as(200)
    assert ready == {"status": "ready", "checks": {"database": "ok", "temporal": "ok"}}

    outages.database.stop()
    down = await outages.ready_as(503, database="unreachable")
    assert down["status"] == "not ready" and down["checks"]["temporal"] == "ok"
    outages.database.start()
    await outages.ready_as(200, database="ok", temporal="ok")

    outages.temporal.stop()
    down = await outages.ready_as(503, temporal="unreachable")
    assert down["status"] == "not ready" and down["checks"]["database"] == "ok"
    start_temporal(outages.temporal)  # the same port and database file
    await outages.ready_as(200, database="ok", temporal="ok")


@dataclass
class Traffic:
    """What clients were told while the database went away and came back."""

    created: list[str] = field(default_factory=list)  # acknowledged with 201
    edited: dict[str, str] = field(default_factory=dict)  # artifact id -> acknowledged name
    statuses: list[tuple[float, int, str]] = field(default_factory=list)  # (when, status, code)


async def _write_loop(client: httpx.AsyncClient, traffic: Traffic, until: asyncio.Event) -> None:
    """Create a draft, then rename it, again and again; record every answer."""
    n = 0
    while not until.is_set():
        n += 1
        made = await client.post(ARTIFACTS, json=artifact(name=f"a-{n}"))
        traffic.statuses.append((time.monotonic(), made.status_code, _code(made)))
        if made.status_code == 201:
            artifact_id = made.json()["id"]
            traffic.created.append(artifact_id)
            renamed = await client.patch(f"{ARTIFACTS}{artifact_id}/", json={"name": f"b-{n}"})
            traffic.statuses.append((time.monotonic(), renamed.status_code, _code(renamed)))
            if renamed.status_code == 200:
                traffic.edited[artifact_id] = f"b-{n}"
        await asyncio.sleep(0.05)


def _code(response: httpx.Response) -> str:
    if response.status_code < 400:
        return ""
    code: str = response.json().get("code", "")
    return code


async def test_postgres_restarted_while_clients_write(outages: Outages) -> None:
    traffic = Traffic()
    until = asyncio.Event()
    writers = [asyncio.create_task(_write_loop(outages.client, traffic, until)) for _ in range(4)]
    try:
        await eventually(lambda: _none(), lambda _: len(traffic.created) >= 8, WITHIN, "writes")
        outages.database.stop()  # immediate: pooled connections go stale
        stopped_at = time.monotonic()
        await eventually(
            lambda: _none(),
            lambda _: any(at > stopped_at and s == 503 for at, s, _c in traffic.statuses),
            WITHIN,
            "a 503 while the database is down",
        )
        outages.database.start()
        started_at = time.monotonic()
        before = len(traffic.created)
        # Recovery: writes succeed again, without restarting the API.
        await eventually(
            lambda: _none(), lambda _: len(traffic.created) >= before + 8, WITHIN, "recovery"
        )
    finally:
        until.set()
        await asyncio.gather(*writers)

    unexpected = [(s, c) for _at, s, c in traffic.statuses if s not in (200, 201, 503)]
    assert not unexpected, f"answers other than success or 503: {unexpected[:10]}"
    refused = [c for _at, s, c in traffic.statuses if s == 503]
    assert set(refused) == {"catalog_unavailable"}, set(refused)
    # Once it answered again, the database is not refused for long: the last answers succeed.
    after = [s for at, s, _c in traffic.statuses if at > started_at]
    assert after[-8:] == [s for s in after[-8:] if s in (200, 201)], after[-20:]

    # Nothing acknowledged is lost: every created draft, with its acknowledged name, and the
    # audit record of each acknowledged create.
    for artifact_id in traffic.created:
        found = await outages.client.get(f"{ARTIFACTS}{artifact_id}/")
        assert found.status_code == 200, (artifact_id, found.text)
        if artifact_id in traffic.edited:
            assert found.json()["name"] == traffic.edited[artifact_id]
    # A record the database refused while the action committed is queued and written soon.
    await eventually(
        lambda: _audited_creates(outages.client),
        lambda audited: set(traffic.created) <= audited,
        30,
        "the audit record of every acknowledged create",
    )
    verified = await outages.client.get("/api/v2/auditEvents/verify/")
    assert verified.status_code == 200 and verified.json()["valid"] is True, verified.text


async def test_a_database_shutting_down_is_a_503(outages: Outages) -> None:
    """A server that is shutting down (or starting up) refuses new connections with an SQLSTATE
    of its own (57P03), which the driver does not call a connection error: still a 503."""
    assert (await outages.client.post(ARTIFACTS, json=artifact(name="before"))).status_code == 201
    # An open session of its own keeps a smart shutdown waiting, refusing new connections.
    holder = await asyncpg.connect(outages.database.dsn)
    try:
        outages.database.stop(mode="smart", wait=False)
        await eventually(
            lambda: _connect_refusal(outages.database.dsn),
            lambda refusal: refusal is not None,
            WITHIN,
            "the server to refuse new connections",
        )
        # The API's pooled connections end, so it must open new ones.
        await holder.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        refused = await outages.client.post(ARTIFACTS, json=artifact(name="during"))
        listed = await outages.client.get(ARTIFACTS)
    finally:
        await holder.close()
    outages.database.stop(mode="fast")
    outages.database.start()
    for answer in (refused, listed):
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "catalog_unavailable"
        assert answer.headers["retry-after"] == "5"
    await eventually(
        lambda: outages.client.post(ARTIFACTS, json=artifact(name="after")),
        lambda answer: answer.status_code == 201,
        WITHIN,
        "writes to succeed again",
    )


async def _connect_refusal(dsn: str) -> str | None:
    """The SQLSTATE a new connection is refused with, or None while it is accepted."""
    try:
        connection = await asyncpg.connect(dsn)
    except asyncpg.PostgresError as error:
        return str(error.sqlstate)
    await connection.close()
    return None


async def _none() -> None:
    return None


async def _audited_creates(client: httpx.AsyncClient) -> set[str]:
    ids: set[str] = set()
    url: str | None = "/api/v2/auditEvents/?action=artifact.create&limit=100"
    while url:
        page = (await client.get(url)).json()
        ids |= {event["resourceId"] for event in page["data"] if event["statusCode"] == 201}
        url = page["next"]
    return ids
