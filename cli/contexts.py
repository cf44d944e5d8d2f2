"""`wapi config`: named contexts (an API URL and a key) in the config file, and which is used."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.output import as_yaml
from cli.session import SESSION, ExitCode, UserError, handled
from client.contexts import ContextEntry, config_path, load_config, resolve, save_config


def register(app: typer.Typer) -> None:
    config = typer.Typer(no_args_is_help=True, help="Named contexts: which API, which key.")
    app.add_typer(config, name="config")

    @config.command("view")
    @handled
    def view() -> None:
        """The config file, keys hidden."""
        path = config_path()
        data = load_config(path).model_dump(by_alias=True, exclude_none=True)
        for entry in data.get("contexts", []):
            if "apiKey" in entry:
                entry["apiKey"] = "(hidden)"
        SESSION.console.print(f"# {path}", markup=False)
        SESSION.console.out(as_yaml(data))

    @config.command("get-contexts")
    @handled
    def get_contexts() -> None:
        """The contexts; `*` marks the current one."""
        loaded = load_config(config_path())
        for entry in loaded.contexts:
            mark = "*" if entry.name == loaded.current_context else " "
            SESSION.console.print(f"{mark} {entry.name}  {entry.api_url}", markup=False)

    @config.command("current-context")
    @handled
    def current_context() -> None:
        """Where the next command goes, and why (context, environment or local stack)."""
        connection = resolve(SESSION.context, SESSION.api_url)
        source = (
            f"context {connection.context}" if connection.context else "environment or local stack"
        )
        key = "a key" if connection.api_key else "no key"
        SESSION.console.print(f"{connection.api_url} ({source}, {key})", markup=False)

    @config.command("use-context")
    @handled
    def use_context(name: str) -> None:
        """Make NAME the current context."""
        path = config_path()
        loaded = load_config(path)
        if loaded.find(name) is None:
            raise UserError(f"no context '{name}' in {path}", ExitCode.NOT_FOUND)
        loaded.current_context = name
        save_config(path, loaded)
        SESSION.console.print(f"current context: {name}")

    @config.command("set-context")
    @handled
    def set_context(
        name: str,
        api_url: Annotated[str, typer.Option(help="The API's root URL.")],
        api_key_file: Annotated[
            Path | None, typer.Option(help="A file holding the key (kept as a path).")
        ] = None,
        api_key_stdin: Annotated[
            bool, typer.Option(help="Read the key from stdin and store it in the file (0600).")
        ] = False,
        gateway_url: Annotated[str | None, typer.Option(help="The invoke gateway's URL.")] = None,
        use: Annotated[bool, typer.Option(help="Also make it the current context.")] = False,
    ) -> None:
        """Add or replace a context. Keys never go on the command line."""
        path = config_path()
        loaded = load_config(path)
        key = sys.stdin.read().strip() if api_key_stdin else None
        key_file = str(api_key_file.resolve()) if api_key_file else None
        entry = ContextEntry(
            name=name, api_url=api_url, api_key=key, api_key_file=key_file, gateway_url=gateway_url
        )
        loaded.put(entry)
        if use or loaded.current_context is None:
            loaded.current_context = name
        save_config(path, loaded)
        SESSION.console.print(f"context {name} saved in {path}", markup=False)

    @config.command("delete-context")
    @handled
    def delete_context(name: str) -> None:
        path = config_path()
        loaded = load_config(path)
        loaded.contexts = [c for c in loaded.contexts if c.name != name]
        if loaded.current_context == name:
            loaded.current_context = None
        save_config(path, loaded)
        SESSION.console.print(f"context {name} deleted")
