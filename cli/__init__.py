"""The `wapi` command: run the product's processes, and manage resources through the typed
client (`client/`): `apply -f`, `get`, `describe`, `logs`, `events`, actions. docs/cli.md."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import actions, apply, audit, contexts, resources, server, session, telemetry

app = typer.Typer(no_args_is_help=True, help=__doc__, rich_markup_mode=None)


@app.callback()
def connection(
    context: Annotated[
        str | None,
        typer.Option(help="A context of the config file (`wapi config get-contexts`)."),
    ] = None,
    api_url: Annotated[
        str | None, typer.Option(help="The API's URL; overrides contexts and WAPI_API_URL.")
    ] = None,
) -> None:
    """Workload API: artifacts, workloads and deployments."""
    session.reset(context, api_url)


server.register(app)
apply.register(app)
resources.register(app)
actions.register(app)
telemetry.register(app)
contexts.register(app)
audit.register(app)
