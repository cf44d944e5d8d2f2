"""Process commands: the whole local stack, or the API, the gateway, the worker, a migration
alone."""

from __future__ import annotations

import asyncio

import typer

from config import logging as wapi_logging
from config.settings import Settings

# The server modules are imported inside the commands: client commands should start fast.


def register(app: typer.Typer) -> None:
    @app.command()
    def run() -> None:
        """Start everything on one machine: Temporal dev server (SQLite), a Podman API service,
        the worker and the API. Ctrl-C stops all of it; data stays in WAPI_STATE_DIR."""
        from cli.devstack import LocalStack

        raise typer.Exit(LocalStack(Settings()).run())

    @app.command()
    def api() -> None:
        """Serve the management API on WAPI_API_HOST:WAPI_API_PORT."""
        from api.serving import ApiServer

        settings = Settings()
        wapi_logging.configure(settings.log_level)
        ApiServer.for_settings(settings).run()

    @app.command()
    def gateway(
        processes: int = typer.Option(
            0, min=0, help="Processes on the port (SO_REUSEPORT); 0: WAPI_GATEWAY_PROCESSES."
        ),
    ) -> None:
        """Serve the invoke gateway on WAPI_GATEWAY_HOST:WAPI_GATEWAY_PORT."""
        from api.gateway import process

        settings = Settings()
        wapi_logging.configure(settings.log_level)
        raise typer.Exit(process.run(settings, processes or settings.gateway_processes))

    @app.command()
    def worker() -> None:
        """Run a Temporal worker for the workflows and activities."""
        import worker as worker_process

        worker_process.main()

    @app.command()
    def migrate() -> None:
        """Bring the catalog schema up to date and make sure an admin key exists."""
        from api.app import bootstrap_catalog
        from catalog import database

        settings = Settings()
        wapi_logging.configure(settings.log_level)

        async def upgrade() -> None:
            engine = database.create_engine(settings.catalog_url)
            try:
                await bootstrap_catalog(settings, engine, database.create_sessionmaker(engine))
            finally:
                await engine.dispose()

        asyncio.run(upgrade())
        typer.echo("catalog is up to date")
