"""A catalog for gateway tests (workloads, deployments, keys, tokens, a role) and real upstream
servers on loopback, so every byte on the wire can be checked."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from catalog import database
from catalog.tables import WorkloadReplica
from config.settings import Settings
from models.api_keys import ApiKeyCreate
from models.deployments import DeploymentCreate
from models.sharing import RoleChange
from services import api_keys, deployment_access, deployments, sharing
from tests.conftest import ADMIN_KEY
from tests.factories import ADMIN, registered_workload
from tests.support.gateway import Running, gateway_in_loop

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class World:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    workloads: dict[str, str]  # name -> id: w1, w2, empty
    deployments: dict[str, str]  # d1 -> w1, d2 -> w2, empty -> empty
    token: str  # of d1
    token2: str  # of d2
    alice: str  # a viewer key with the role `user` on d1
    bob: str  # a viewer key with no role on anything
    admin: str = ADMIN_KEY

    @property
    def d1(self) -> str:
        return self.deployments["d1"]

    @property
    def w1(self) -> str:
        return self.workloads["w1"]

    def path(self, kind: str = "deployments", name: str = "d1", rest: str = "/") -> str:
        ids = self.deployments if kind == "deployments" else self.workloads
        return f"/api/v2/endpoints/{kind}/{ids.get(name, name)}{rest}"

    async def serve(self, **replicas: list[str]) -> None:
        """Make these the ready replicas of the named workloads."""
        async with self.sessions() as session, session.begin():
            for name, addresses in replicas.items():
                workload_id = self.workloads[name]
                await session.execute(
                    delete(WorkloadReplica).where(WorkloadReplica.workload_id == workload_id)
                )
                for index, address in enumerate(addresses):
                    session.add(ready_replica(workload_id, address, index))

    @contextlib.asynccontextmanager
    async def gateway(self, **options: Any) -> AsyncIterator[Running]:
        """A gateway on this catalog; `options` are settings (`gateway_...`) or replicas."""
        replicas = {name: value for name, value in options.items() if name in self.workloads}
        await self.serve(**replicas)
        overrides = {name: value for name, value in options.items() if name not in replicas}
        async with gateway_in_loop(self.settings, **overrides) as running:
            yield running


def ready_replica(workload_id: str, address: str, index: int = 0) -> WorkloadReplica:
    return WorkloadReplica(
        workload_id=workload_id,
        group_name="default",
        replica_index=index,
        generation=1,
        name=f"replica-{index}",
        state="running",
        ready=True,
        address=address,
        probes={},
    )


@contextlib.asynccontextmanager
async def sqlite_world(directory: Path, **settings: Any) -> AsyncIterator[World]:
    """A world on a SQLite catalog in `directory`; `settings` are more Settings fields."""
    built = await build_world(
        Settings(
            state_dir=directory / "state",
            database_url=f"sqlite+aiosqlite:///{directory / 'catalog.db'}",
            bootstrap_admin_key=ADMIN_KEY,
            **settings,
        )
    )
    try:
        yield built
    finally:
        await built.engine.dispose()


async def build_world(settings: Settings) -> World:
    engine = database.create_engine(settings.catalog_url)
    await database.migrate(engine)
    sessions = database.create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        await api_keys.ensure_admin_key(session, preset=ADMIN_KEY, key_file=settings.admin_key_file)
        workloads = {
            name: (await registered_workload(session, name)).id for name in ("w1", "w2", "empty")
        }
        ids = {}
        for name, target in (("d1", "w1"), ("d2", "w2"), ("empty", "empty")):
            created = DeploymentCreate(name=name, workload_id=workloads[target])
            ids[name] = (await deployments.create_deployment(session, created, ADMIN)).id
        _, token = await deployment_access.create_token(session, ids["d1"], "t", "admin")
        _, token2 = await deployment_access.create_token(session, ids["d2"], "t", "admin")
        keys = {}
        for name in ("alice", "bob"):
            data = ApiKeyCreate(name=name, username=name, role="viewer")
            keys[name] = (await api_keys.create_key(session, data, "admin"))[1]
        await sharing.change_roles(
            session, "deployment", ids["d1"], [RoleChange(username="alice", role="user")], "admin"
        )
    return World(
        settings, engine, sessions, workloads, ids, token, token2, keys["alice"], keys["bob"]
    )


# ---- upstream servers and a raw HTTP client ------------------------------------------------


@contextlib.asynccontextmanager
async def raw_upstream(handler: Handler) -> AsyncIterator[str]:
    async def quietly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A replica cut off when the test ends has nothing to report.
        with contextlib.suppress(
            asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError
        ):
            await handler(reader, writer)

    server = await asyncio.start_server(quietly, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One request as the replica sees it: head line, headers (lowercased), body (chunked
    bodies are returned with their framing)."""
    head = await reader.readuntil(b"\r\n\r\n")
    line, *lines = head[:-4].split(b"\r\n")
    headers = {}
    for raw in lines:
        name, _, value = raw.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        body = await read_chunks(reader)
    return line, headers, body


async def read_chunks(reader: asyncio.StreamReader) -> bytes:
    """A chunked body up to its last chunk, framing included."""
    body = b""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.strip(), 16)
        body += size_line + await reader.readexactly(size + 2)
        if size == 0:
            return body


@contextlib.asynccontextmanager
async def echo_upstream(
    record: list[Any] | None = None, *, keep: bool = True
) -> AsyncIterator[str]:
    """Answers every request with a JSON description of what it received."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line, headers, body = await read_request(reader)
                if record is not None:
                    record.append((line, headers, body))
                payload = json.dumps(
                    {
                        "line": line.decode(),
                        "body": body.decode("latin-1"),
                        "headers": {k.decode(): v.decode() for k, v in headers.items()},
                    }
                ).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Connection: keep-alive, X-Secret\r\nX-Secret: hop\r\n"
                    b"Keep-Alive: timeout=5\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(payload), payload)
                )
                await writer.drain()
                if not keep:
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async with raw_upstream(handle) as address:
        yield address


async def exchange(
    port: int, raw: bytes, *, until_close: bool = False, read_timeout: float = 5.0
) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    if until_close:
        data = await asyncio.wait_for(reader.read(), read_timeout)
    else:
        data = await asyncio.wait_for(read_response(reader), read_timeout)
    writer.close()
    return data


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One full response (Content-Length or chunked framing), raw."""
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    if b"\r\ncontent-length:" in lower:
        length = int(lower.split(b"\r\ncontent-length:")[1].split(b"\r\n")[0])
        return head + await reader.readexactly(length)
    if b"transfer-encoding: chunked" in lower:
        return head + await read_chunks(reader)
    return head


def request(
    method: str, path: str, secret: str | None, extra: bytes = b"", body: bytes = b""
) -> bytes:
    auth = f"Authorization: Bearer {secret}\r\n".encode() if secret else b""
    length = b"Content-Length: %d\r\n" % len(body) if body else b""
    return b"%s %s HTTP/1.1\r\nHost: gw.example\r\n%s%s%s\r\n%s" % (
        method.encode(),
        path.encode(),
        auth,
        length,
        extra,
        body,
    )


def body_of(response: bytes) -> Any:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])
