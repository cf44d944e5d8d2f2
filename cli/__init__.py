"""The `wapi` command: run the product's processes, and manage resources over the HTTP API."""

from __future__ import annotations

import typer

from cli import audit, client, server

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
server.register(app)
client.register(app)
audit.register(app)
