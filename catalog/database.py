"""Engine, sessions and migrations for the catalog."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# SQLSTATE classes of a server that is away for now, not of a bad statement: connection
# exceptions, operator intervention (shutting down, starting up, backend terminated) and
# insufficient resources (too many connections).
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53")

# An execution option marking sessions that never write (see `create_read_sessionmaker`).
READ_ONLY = "wapi_read_only"


class EncodedJSON(str):
    """JSON text already encoded, for a JSON column: stored as it is, not encoded again
    (the gateway's audit summaries are encoded once, for their hash)."""


def _json_serializer(value: Any) -> str:
    return value if isinstance(value, EncodedJSON) else json.dumps(value)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """The catalog engine, with what each backend needs to be safe under concurrency."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(
            url, pool_pre_ping=True, json_serializer=_json_serializer, **kwargs
        )

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url, connect_args={"timeout": 30}, json_serializer=_json_serializer, **kwargs
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Why IMMEDIATE: a deferred transaction that reads and then writes cannot wait for
        # another writer (SQLite answers "database is locked" at once). Taking the write lock
        # up front makes concurrent writers queue on busy_timeout instead, across processes too.
        # Read-only sessions begin deferred: in WAL mode a reader never waits for a writer.
        read_only = conn.get_execution_options().get(READ_ONLY)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def create_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for lookups that never write (the gateway's hot path). On SQLite they do not
    take the write lock, so a request never queues behind an audit batch or a worker's write."""
    return async_sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# Several API processes may start at once on one PostgreSQL catalog: each startup step that
# checks and then writes (migrating, creating the first admin key) holds this lock until its
# transaction ends, so one does it and the others find it done. On SQLite, BEGIN IMMEDIATE
# already serializes them.
_STARTUP_LOCK = text("SELECT pg_advisory_xact_lock(7226361)")


async def hold_startup_lock(session: AsyncSession) -> None:
    """Serialize this transaction with every other process's startup step (see above)."""
    if (await session.connection()).dialect.name == "postgresql":
        await session.execute(_STARTUP_LOCK)


async def migrate(engine: AsyncEngine) -> None:
    """Bring the catalog schema to the newest migration."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


def _upgrade(connection: Any) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(_STARTUP_LOCK)
    config = alembic_config(str(connection.engine.url))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def ping(engine: AsyncEngine, within: float = 2.0) -> None:
    """Raise if the database does not answer a trivial query in time."""
    async with asyncio.timeout(within), engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def catalog_unavailable(error: BaseException) -> bool:
    """Whether `error` means the catalog is not answering (retry later), not that a statement
    is wrong. The driver raises a plain `ConnectionError` when it cannot connect; SQLAlchemy
    wraps the rest, and a server starting up or shutting down answers with an SQLSTATE that
    SQLAlchemy leaves in a generic `DBAPIError`."""
    if isinstance(
        error,
        (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
         sqlalchemy.exc.TimeoutError, ConnectionError),
    ):  # fmt: skip
        return True
    if not isinstance(error, sqlalchemy.exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
