"""Autogenerate a catalog migration from the tables.

Usage: `.venv/bin/python scripts/new_migration.py "what changed"`, then review the file.
"""

from __future__ import annotations

import sys
import tempfile

from alembic import command
from sqlalchemy import create_engine

from workload_api.catalog.database import alembic_config


def main(message: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/schema.db"
        engine = create_engine(url)
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            command.revision(config, message=message, autogenerate=True)


if __name__ == "__main__":
    main(sys.argv[1])
