"""`wapi apply -f`, `wapi diff -f` and `wapi delete` (a file, or one resource by name)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from cli.kinds import kind_named, short
from cli.plan import Change, Key
from cli.plan_stack import plan, teardown
from cli.progress import ProgressView
from cli.session import SESSION, ExitCode, UserError, handled
from cli.stack import load
from client import Client
from models.status import WorkloadStatus

FileOption = Annotated[
    Path,
    typer.Option(
        "--filename", "-f", help="The stack file (YAML, several documents); '-' is stdin."
    ),
]
WaitOption = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Wait until it runs, with live progress.")
]
TimeoutOption = Annotated[
    float, typer.Option(help="Seconds each wait may take before exit code 8.", min=1)
]


class Runner:
    """Carries out changes; every wait shows its progress in the view."""

    def __init__(self, wapi: Client, view: ProgressView, waiting: bool, timeout: float) -> None:
        self.wapi = wapi
        self.view = view
        self.waiting = waiting
        self.timeout = timeout
        self.ids: dict[Key, str] = {}

    def say(self, text: str) -> None:
        self.view.say(text)

    def wait_workload(self, workload_id: str, label: str, *statuses: WorkloadStatus) -> None:
        """Until it has `statuses`; for `running` (the default), until every replica is ready."""
        fresh = workload_id in self.ids.values()  # made by this command: all its events are news
        poll = self.view.on_workload(label, fresh)
        if statuses in ((), ("running",)):
            self.wapi.workloads.wait_until_ready(workload_id, timeout=self.timeout, on_poll=poll)
        else:
            self.wapi.workloads.wait_until(
                workload_id, *statuses, timeout=self.timeout, on_poll=poll
            )

    def wait_deployment(self, deployment_id: str, label: str) -> None:
        poll = self.view.on_deployment(label, deployment_id in self.ids.values())
        self.wapi.deployments.wait_until(
            deployment_id, "running", timeout=self.timeout, on_poll=poll
        )

    def wait_swap(self, deployment_id: str, swap_id: str, label: str) -> None:
        self.wapi.deployments.wait_for_swap(
            deployment_id, swap_id, timeout=self.timeout, on_poll=self.view.on_swap(label)
        )

    def run(self, changes: list[Change]) -> None:
        for change in changes:
            if change.run is not None:
                change.run(self)


def show_plan(changes: list[Change]) -> None:
    width = max(len(change.label) for change in changes) + 2
    for change in changes:
        SESSION.console.print(f"{change.label:<{width}}{change.action}", markup=False)
        for line in change.details:
            SESSION.console.print(f"    {line}", markup=False, highlight=False)


def summary(changes: list[Change]) -> str:
    counted = Counter(c.action for c in changes if c.action not in ("unchanged", "absent"))
    return ", ".join(f"{n} {action}" for action, n in counted.items())


def register(app: typer.Typer) -> None:
    @app.command()
    @handled
    def apply(
        filename: FileOption,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
        ] = False,
        wait: WaitOption = False,
        timeout: TimeoutOption = 600,
    ) -> None:
        """Create or update the artifacts, workloads and deployments of a stack file, matched by
        name. A second apply of the same file changes nothing and says so."""
        stack = load(filename)
        wapi = SESSION.client()
        changes = plan(wapi, stack)
        show_plan(changes)
        done = summary(changes)
        if not done:
            SESSION.console.print("no changes")
            return
        if dry_run:
            SESSION.console.print(f"dry run, nothing applied: {done}")
            return
        with ProgressView(wapi, SESSION.console) as view:
            Runner(wapi, view, wait, timeout).run(changes)
        SESSION.console.print(f"applied: {done}")

    @app.command()
    @handled
    def diff(filename: FileOption) -> None:
        """Show what `apply` would change. Exit code 0: nothing; 10: there are changes."""
        changes = plan(SESSION.client(), load(filename))
        show_plan(changes)
        done = summary(changes)
        SESSION.console.print(done or "no changes")
        if done:
            raise typer.Exit(ExitCode.CHANGES)

    @app.command()
    @handled
    def delete(
        kind: Annotated[str | None, typer.Argument(help="A kind, e.g. workload.")] = None,
        ref: Annotated[str | None, typer.Argument(help="Its name or id.")] = None,
        filename: Annotated[
            Path | None, typer.Option("--filename", "-f", help="Delete what a stack file made.")
        ] = None,
    ) -> None:
        """Delete what a stack file describes (deployments, workloads, drafts; registered
        versions are kept), or one resource: `wapi delete workload hello`. Each delete is
        done when the command returns (containers removed)."""
        wapi = SESSION.client()
        if filename is not None:
            changes = teardown(wapi, load(filename))
            show_plan(changes)
            with ProgressView(wapi, SESSION.console) as view:
                Runner(wapi, view, False, 0).run(changes)
            done = summary(changes)
            SESSION.console.print(f"done: {done}" if done else "nothing to delete")
            return
        if kind is None or ref is None:
            raise UserError("give KIND NAME, or -f FILE", ExitCode.USAGE)
        _delete_one(wapi, kind, ref)


def _delete_one(wapi: Client, kind_word: str, ref: str) -> None:
    kind = kind_named(kind_word)
    found = kind.find(wapi, ref)
    deleters: dict[str, Callable[[str], object]] = {
        "artifact": wapi.artifacts.delete,
        "workload": wapi.workloads.delete,
        "deployment": wapi.deployments.delete,
        "secret": wapi.secrets.delete,
        "apikey": wapi.api_keys.revoke,
    }
    if kind.name not in deleters:
        raise UserError(f"{kind.plural} cannot be deleted", ExitCode.USAGE)
    deleters[kind.name](found.id)
    SESSION.console.print(f"{kind.name}/{short(found)} deleted", markup=False)
