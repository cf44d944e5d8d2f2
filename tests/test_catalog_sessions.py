"""Read-only sessions never queue behind a writer: the gateway's lookups must not wait for an
audit batch or a worker's write (on SQLite every other transaction takes the write lock)."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog import database
from catalog.tables import ApiKey


async def test_a_reader_does_not_wait_for_a_writer(catalog_engine: AsyncEngine) -> None:
    writes = database.create_sessionmaker(catalog_engine)
    reads = database.create_read_sessionmaker(catalog_engine)
    async with writes() as writer, writer.begin():
        # The writer holds its transaction (and on SQLite the write lock) open meanwhile.
        await writer.execute(delete(ApiKey).where(ApiKey.id == "none"))
        async with asyncio.timeout(2), reads() as reader:
            assert list(await reader.scalars(select(ApiKey.id))) == []
