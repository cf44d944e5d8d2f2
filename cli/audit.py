"""`wapi audit verify`: check the audit chain straight from the catalog, so it works while the
API is down (and does not trust the API's answer)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from config.settings import Settings
from models.audit import AuditVerification


async def _verify(url: str, anchor: tuple[int, str] | None) -> AuditVerification:
    # Imported here: every `wapi` command would otherwise load SQLAlchemy and Alembic.
    from catalog import database
    from services import audit as audit_service

    engine = database.create_engine(url)
    try:
        async with database.create_sessionmaker(engine)() as session:
            return await audit_service.verify(session, anchor=anchor)
    finally:
        await engine.dispose()


def _parse_anchor(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    seq, _, digest = value.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise typer.BadParameter("expected SEQ:HASH, e.g. 42:9f2c...(64 hex digits)")
    return int(seq), digest.lower()


def register(app: typer.Typer) -> None:
    audit = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")
    app.add_typer(audit, name="audit")

    @audit.command("verify")
    def verify(
        anchor: Annotated[
            str | None,
            typer.Option(
                help="SEQ:HASH of a head printed by an earlier run; also detects truncation."
            ),
        ] = None,
    ) -> None:
        """Recompute every hash of the chain in WAPI_DATABASE_URL (or the local catalog).
        Exit code 0 when it is intact, 1 with the reason when it is not."""
        result = asyncio.run(_verify(Settings().catalog_url, _parse_anchor(anchor)))
        typer.echo(json.dumps(result.model_dump(mode="json", by_alias=True), indent=2))
        if not result.valid:
            typer.echo(
                f"audit chain is NOT valid at seq {result.first_bad_seq}: {result.reason}", err=True
            )
            raise typer.Exit(1)
