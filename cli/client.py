"""Resource commands over the HTTP API. Configure with WAPI_URL and WAPI_API_KEY (default: the
admin key file that `wapi run` writes in the state directory)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml

from config.settings import Settings

ARTIFACTS = "/api/v2/registry/artifacts/"
WORKLOADS = "/api/v2/console/workloads/"


def _client() -> httpx.Client:
    settings = Settings()
    url = os.environ.get("WAPI_URL", f"http://{settings.api_host}:{settings.api_port}")
    key = os.environ.get("WAPI_API_KEY")
    if not key and settings.admin_key_file.exists():
        key = settings.admin_key_file.read_text().strip()
    if not key:
        raise typer.BadParameter("set WAPI_API_KEY (or run next to a `wapi run` state directory)")
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _call(method: str, path: str, body: Any = None, **params: Any) -> Any:
    with _client() as client:
        response = client.request(
            method, path, json=body, params={k: v for k, v in params.items() if v is not None}
        )
    if response.status_code >= 400:
        typer.echo(response.text, err=True)
        raise typer.Exit(1)
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def _show(value: Any) -> None:
    if value is not None:
        typer.echo(json.dumps(value, indent=2))


def _load(path: Path) -> Any:
    text = sys.stdin.read() if str(path) == "-" else path.read_text()
    return yaml.safe_load(text)


SpecFile = Annotated[Path, typer.Argument(help="JSON or YAML request body; '-' reads stdin.")]


def register(app: typer.Typer) -> None:
    artifacts = typer.Typer(no_args_is_help=True, help="Draft and registered artifacts.")
    workloads = typer.Typer(no_args_is_help=True, help="Running artifacts.")
    app.add_typer(artifacts, name="artifacts")
    app.add_typer(workloads, name="workloads")

    @artifacts.command("list")
    def list_artifacts(status: str | None = None, limit: int = 100) -> None:
        _show(_call("GET", ARTIFACTS, status=status, limit=limit))

    @artifacts.command("get")
    def get_artifact(artifact_id: str) -> None:
        _show(_call("GET", f"{ARTIFACTS}{artifact_id}/"))

    @artifacts.command("create")
    def create_artifact(file: SpecFile) -> None:
        _show(_call("POST", ARTIFACTS, _load(file)))

    @artifacts.command("register")
    def register_artifact(artifact_id: str) -> None:
        """Register a draft as the next version of its collection."""
        _show(_call("PATCH", f"{ARTIFACTS}{artifact_id}/", {"status": "registered"}))

    @artifacts.command("delete")
    def delete_artifact(artifact_id: str) -> None:
        _call("DELETE", f"{ARTIFACTS}{artifact_id}/")

    @workloads.command("list")
    def list_workloads(status: str | None = None, limit: int = 100) -> None:
        _show(_call("GET", WORKLOADS, status=status, limit=limit))

    @workloads.command("get")
    def get_workload(workload_id: str) -> None:
        _show(_call("GET", f"{WORKLOADS}{workload_id}/"))

    @workloads.command("create")
    def create_workload(file: SpecFile) -> None:
        _show(_call("POST", WORKLOADS, _load(file)))

    @workloads.command("start")
    def start_workload(workload_id: str) -> None:
        _show(_call("POST", f"{WORKLOADS}{workload_id}/start/"))

    @workloads.command("stop")
    def stop_workload(workload_id: str) -> None:
        _show(_call("POST", f"{WORKLOADS}{workload_id}/stop/"))

    @workloads.command("delete")
    def delete_workload(workload_id: str) -> None:
        _call("DELETE", f"{WORKLOADS}{workload_id}/")

    @workloads.command("events")
    def workload_events(workload_id: str, limit: int = 100) -> None:
        _show(_call("GET", f"{WORKLOADS}{workload_id}/events/", limit=limit))

    @workloads.command("logs")
    def workload_logs(workload_id: str, tail: int = 100, follow: bool = False) -> None:
        params: dict[str, str | int] = {"tail": tail, "follow": str(follow).lower()}
        with (
            _client() as client,
            client.stream(
                "GET", f"{WORKLOADS}{workload_id}/logs/", params=params, timeout=None
            ) as response,
        ):
            if response.status_code >= 400:
                typer.echo(response.read().decode(), err=True)
                raise typer.Exit(1)
            for line in response.iter_lines():
                typer.echo(line)
