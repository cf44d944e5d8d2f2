"""The migrations produce exactly the schema the tables declare, on both backends."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from catalog import database
from catalog.tables import Base


async def test_migrations_match_the_tables(catalog_url: str) -> None:
    engine = database.create_engine(catalog_url)
    try:
        await database.migrate(engine)
        await database.migrate(engine)  # idempotent: a restart migrates again

        def diff(connection: Any) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()
