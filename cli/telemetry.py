"""`wapi logs` and `wapi events`: what containers print and what happened, live with -f/-w."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

import typer

from cli.kinds import split_ref
from cli.resources import RefArgument
from cli.session import SESSION, ExitCode, UserError, handled
from client import Client
from models.deployments import DeploymentEventPublic
from models.workloads import WorkloadEventPublic


def _workload_id(wapi: Client, ref: str) -> str:
    """A workload, or `deployment/NAME` for the workload it serves now."""
    kind, name = split_ref(ref, "workload")
    found = kind.find(wapi, name)
    if kind.name == "deployment":
        return str(found.workload_id)
    if kind.name != "workload":
        raise UserError("logs come from a workload or a deployment", ExitCode.USAGE)
    return str(found.id)


def register(app: typer.Typer) -> None:
    @app.command()
    @handled
    def logs(
        target: RefArgument,
        follow: Annotated[
            bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
        ] = False,
        tail: Annotated[int, typer.Option(help="Start with the last N lines.", min=0)] = 100,
        since: Annotated[datetime | None, typer.Option(help="Only lines after this time.")] = None,
        replica: Annotated[str | None, typer.Option(help="Only this replica.")] = None,
        container: Annotated[str | None, typer.Option(help="Only this container.")] = None,
    ) -> None:
        """Container logs of a workload (or of the workload a `deployment/NAME` serves)."""
        wapi = SESSION.client()
        workload_id = _workload_id(wapi, target)
        if not follow:
            text = wapi.workloads.logs(
                workload_id, tail=tail, since=since, replica=replica, container=container
            )
            SESSION.console.out(text, end="", highlight=False)
            return
        lines = wapi.workloads.follow_logs(
            workload_id, tail=tail, since=since, replica=replica, container=container
        )
        for line in lines:
            SESSION.console.out(line, highlight=False)

    @app.command()
    @handled
    def events(
        target: RefArgument,
        watch: Annotated[
            bool, typer.Option("--watch", "-w", help="Keep printing new events.")
        ] = False,
        interval: Annotated[
            float, typer.Option(help="Seconds between polls with -w.", min=0.2)
        ] = 1.0,
    ) -> None:
        """Events of a workload, or `deployment/NAME`, oldest first."""
        wapi = SESSION.client()
        kind, name = split_ref(target, "workload")
        found = kind.find(wapi, name)
        stream: Iterator[WorkloadEventPublic | DeploymentEventPublic]
        if kind.name == "workload":
            workloads = wapi.workloads
            stream = (
                workloads.watch_events(found.id, interval)
                if watch
                else workloads.events.all(found.id)
            )
        elif kind.name == "deployment":
            deployments = wapi.deployments
            stream = (
                deployments.watch_events(found.id, interval)
                if watch
                else deployments.events.all(found.id)
            )
        else:
            raise UserError("events belong to workloads and deployments", ExitCode.USAGE)
        for event in stream:
            stamp = event.timestamp.isoformat(timespec="seconds")
            SESSION.console.print(
                f"{stamp} {event.type} {event.message}", markup=False, highlight=False
            )
