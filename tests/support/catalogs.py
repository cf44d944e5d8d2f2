"""Fresh catalogs per test: a SQLite file, or a PostgreSQL database from a migrated template."""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor

import asyncpg
from sqlalchemy.engine import make_url

from catalog import database

TEMPLATE = "wapi_template"


def _dsn(url: str, dbname: str) -> str:
    parsed = make_url(url).set(drivername="postgresql", database=dbname)
    return parsed.render_as_string(hide_password=False)


async def _admin(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(_dsn(url, "postgres"))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def create_template(url: str) -> None:
    """Create and migrate the template database once per session."""

    async def build() -> None:
        await _admin(url, f"DROP DATABASE IF EXISTS {TEMPLATE}", f"CREATE DATABASE {TEMPLATE}")
        engine = database.create_engine(str(make_url(url).set(database=TEMPLATE)))
        try:
            await database.migrate(engine)
        finally:
            await engine.dispose()

    # A thread of its own: this may be called while the test session's event loop is running.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, build()).result()


async def create_database(url: str) -> str:
    name = f"t_{secrets.token_hex(6)}"
    await _admin(url, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return str(make_url(url).set(database=name).render_as_string(hide_password=False))


async def drop_database(url: str, database_url: str) -> None:
    name = make_url(database_url).database
    await _admin(url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
