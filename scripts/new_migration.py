"""Autogenerate a catalog migration from the tables.

Usage: `.venv/bin/python scripts/new_migration.py "what changed"`, then review the file.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from catalog.database import MIGRATIONS_DIR, alembic_config


def main(message: str) -> None:
    versions = MIGRATIONS_DIR / "versions"
    numbers = [int(p.name[:4]) for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py")]
    rev_id = f"{max(numbers, default=0) + 1:04d}"
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/schema.db"
        with create_engine(url).begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            config.set_main_option("file_template", f"{rev_id}_{slug}")
            command.upgrade(config, "head")
            command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
    path = versions / f"{rev_id}_{slug}.py"
    text = path.read_text().replace("astext_type=Text()", "astext_type=sa.Text()")
    text = "\n".join(line for line in text.splitlines() if "# ###" not in line) + "\n"
    Path(path).write_text(text)
    subprocess.run([sys.executable, "-m", "ruff", "format", str(path)], check=True)
    print(path)  # noqa: T201


if __name__ == "__main__":
    main(sys.argv[1])
