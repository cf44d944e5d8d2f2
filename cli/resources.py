"""`wapi get` and `wapi describe` for every kind, and the imperative actions: start, stop,
scale, swap, register, create (tokens, secrets, API keys), whoami and invoke."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.actions import read_value
from cli.apply import Runner, TimeoutOption, WaitOption
from cli.describe import describe_resource
from cli.kinds import KINDS, kind_named, short, split_ref
from cli.output import Format, emit
from cli.progress import ProgressView
from cli.session import SESSION, ExitCode, UserError, exit_code_for, handled
from client import ApiError, Client
from client.errors import error_from_response
from models.api_keys import Role
from models.deployments import SwapCreate
from models.status import WorkloadStatus
from models.workloads import WorkloadRuntime, WorkloadUpdate

OutputOption = Annotated[Format, typer.Option("--output", "-o", help="How to print it.")]


def complete_kind(incomplete: str) -> list[str]:
    return [k.plural for k in KINDS if k.plural.startswith(incomplete)]


def complete_name(ctx: typer.Context, incomplete: str) -> list[str]:
    """Names of the kind typed before, from the API (quietly nothing when it is away)."""
    word = ctx.params.get("kind") or "workload"
    try:
        kind = kind_named(str(word))
        with Client.from_context(timeout=2) as wapi:
            names = [getattr(i, "name", None) or i.id for i in kind.listing(wapi, {})]
    except Exception:  # completion must never fail the shell
        return []
    return sorted(n for n in set(names) if n.startswith(incomplete))


KindArgument = Annotated[
    str, typer.Argument(help="artifacts, workloads, deployments, ...", autocompletion=complete_kind)
]
RefArgument = Annotated[str, typer.Argument(help="A name or id.", autocompletion=complete_name)]


def _wait(
    wapi: Client, timeout: float, workload_id: str, label: str, status: WorkloadStatus
) -> None:
    with ProgressView(wapi, SESSION.console) as view:
        Runner(wapi, view, True, timeout).wait_workload(workload_id, label, status)


def register(app: typer.Typer) -> None:
    @app.command()
    @handled
    def get(
        kind: KindArgument,
        ref: Annotated[
            str | None,
            typer.Argument(help="A name or id; all when left out.", autocompletion=complete_name),
        ] = None,
        output: OutputOption = Format.table,
        status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
        search: Annotated[str | None, typer.Option(help="Text in names and ids.")] = None,
    ) -> None:
        """List resources of a kind, or show one."""
        found = kind_named(kind)
        wapi = SESSION.client()
        if ref is not None:
            item = found.find(wapi, ref)
            emit(SESSION.console, item, output, found.columns, found.wide, found.name)
            return
        options: dict[str, Any] = {}
        for name, value in (("status", status), ("search", search)):
            if value is not None:
                if name not in found.filters:
                    raise UserError(f"{found.plural} cannot be filtered by {name}", ExitCode.USAGE)
                options[name] = value
        items = list(found.listing(wapi, options))
        emit(SESSION.console, items, output, found.columns, found.wide, found.name)

    @app.command()
    @handled
    def describe(kind: KindArgument, ref: RefArgument) -> None:
        """Everything about one resource: fields, and for workloads and deployments their
        replicas, swaps, tokens, roles and latest events."""
        found = kind_named(kind)
        wapi = SESSION.client()
        describe_resource(wapi, SESSION.console, found, found.find(wapi, ref))

    @app.command()
    @handled
    def start(
        workload: RefArgument, wait: WaitOption = False, timeout: TimeoutOption = 600
    ) -> None:
        """Start a stopped or errored workload (a new generation)."""
        wapi = SESSION.client()
        found = kind_named("workload").find(wapi, workload)
        SESSION.console.print(f"workload/{found.name}: {wapi.workloads.start(found.id).status}")
        if wait:
            _wait(wapi, timeout, found.id, f"workload/{found.name}", "running")

    @app.command()
    @handled
    def stop(workload: RefArgument, wait: WaitOption = False, timeout: TimeoutOption = 600) -> None:
        """Stop a workload and remove its containers; it and its artifact are kept."""
        wapi = SESSION.client()
        found = kind_named("workload").find(wapi, workload)
        SESSION.console.print(f"workload/{found.name}: {wapi.workloads.stop(found.id).status}")
        if wait:
            _wait(wapi, timeout, found.id, f"workload/{found.name}", "stopped")

    @app.command()
    @handled
    def scale(
        workload: RefArgument,
        replicas: Annotated[int, typer.Option(help="Replicas of the group.", min=1)],
        group: Annotated[
            str | None, typer.Option(help="The container group (default: all).")
        ] = None,
        wait: WaitOption = False,
        timeout: TimeoutOption = 600,
    ) -> None:
        """Change a workload's replica count; a running workload scales live."""
        wapi = SESSION.client()
        found = kind_named("workload").find(wapi, workload)
        current = found.runtime.container_groups
        if group is not None and all(g.name != group for g in current):
            raise UserError(f"workload '{found.name}' has no group '{group}'", ExitCode.NOT_FOUND)
        if any(g.autoscaled for g in current if group in (None, g.name)):
            raise UserError(
                f"workload '{found.name}' scales automatically (autoscaling): change its "
                "minReplicaCount and maxReplicaCount instead",
                ExitCode.CONFLICT,
            )
        groups = [g.as_input(replicas if group in (None, g.name) else None) for g in current]
        runtime = WorkloadRuntime(container_groups=groups)
        wapi.workloads.update(found.id, WorkloadUpdate(runtime=runtime))
        SESSION.console.print(f"workload/{found.name}: scaled to {replicas}")
        if wait:
            _wait(wapi, timeout, found.id, f"workload/{found.name}", "running")

    @app.command()
    @handled
    def swap(
        deployment: RefArgument,
        to: Annotated[str, typer.Option(help="The workload to move traffic to (name or id).")],
        ready_timeout: Annotated[int, typer.Option(help="Roll back if not running by then.")] = 300,
        keep_previous: Annotated[int, typer.Option(help="Keep the old workload this long.")] = 0,
        wait: WaitOption = False,
        timeout: TimeoutOption = 600,
    ) -> None:
        """Move a deployment's traffic to another registered workload without downtime."""
        wapi = SESSION.client()
        found = kind_named("deployment").find(wapi, deployment)
        target = kind_named("workload").find(wapi, to)
        body = SwapCreate(
            workload_id=target.id,
            ready_timeout_seconds=ready_timeout,
            keep_previous_seconds=keep_previous,
        )
        started = wapi.deployments.swap(found.id, body)
        SESSION.console.print(f"deployment/{found.name}: swap {started.id} {started.status}")
        if wait:
            with ProgressView(wapi, SESSION.console) as view:
                Runner(wapi, view, True, timeout).wait_swap(
                    found.id, started.id, f"deployment/{found.name}"
                )

    @app.command("register")
    @handled
    def register_artifact(artifact: RefArgument) -> None:
        """Register a draft artifact: the next version of its collection, immutable."""
        wapi = SESSION.client()
        found = kind_named("artifact").find(wapi, artifact)
        done = wapi.artifacts.register(found.id)
        SESSION.console.print(f"artifact/{done.name}: registered v{done.version} ({done.id})")

    @app.command()
    @handled
    def whoami(output: OutputOption = Format.table) -> None:
        """The key in use: its user and role."""
        me = SESSION.client().api_keys.me()
        emit(SESSION.console, me, output, kind_named("apikey").columns)

    create = typer.Typer(no_args_is_help=True, help="Create a token, a secret or an API key.")
    app.add_typer(create, name="create")

    @create.command("token")
    @handled
    def create_token(deployment: RefArgument, name: str) -> None:
        """An invoke token for one deployment; printed once, never shown again."""
        wapi = SESSION.client()
        found = kind_named("deployment").find(wapi, deployment)
        SESSION.console.out(wapi.deployments.create_token(found.id, {"name": name}).token)

    @create.command("secret")
    @handled
    def create_secret(
        name: str,
        from_file: Annotated[Path, typer.Option(help="The value's file; '-' reads stdin.")],
        description: str = "",
    ) -> None:
        """A secret; its value is read from a file or stdin, never from the command line."""
        body = {"name": name, "description": description, "value": read_value(from_file)}
        made = SESSION.client().secrets.create(body)
        SESSION.console.print(f"secret/{made.name} ({made.id}) version {made.version}")

    @create.command("apikey")
    @handled
    def create_apikey(
        name: str,
        user: Annotated[str, typer.Option(help="Who the key acts for.")],
        role: Annotated[str, typer.Option(help="admin, editor or viewer.")],
    ) -> None:
        """An API key (admins only); the key is printed once."""
        if role not in ("admin", "editor", "viewer"):
            raise UserError("role must be admin, editor or viewer", ExitCode.USAGE)
        chosen: Role = role  # type: ignore[assignment]
        made = SESSION.client().api_keys.create({"name": name, "username": user, "role": chosen})
        SESSION.console.out(made.key)

    @app.command()
    @handled
    def invoke(
        target: Annotated[str, typer.Argument(help="workload/NAME or deployment/NAME (or an id).")],
        path: Annotated[str, typer.Argument(help="The path inside the workload.")] = "",
        method: Annotated[str, typer.Option("--request", "-X")] = "GET",
        data: Annotated[str | None, typer.Option("--data", "-d", help="The body.")] = None,
        header: Annotated[
            list[str] | None, typer.Option("--header", "-H", help="'Name: value'")
        ] = None,
        token: Annotated[
            str | None, typer.Option(help="Call with this invoke token instead of the API key.")
        ] = None,
    ) -> None:
        """Call a workload or deployment through the invoke gateway; print its answer. An
        error status exits with the matching code."""
        wapi = SESSION.client()
        kind, ref = split_ref(target, "workload")
        found = kind.find(wapi, ref)
        headers = dict(_header(h) for h in header or [])
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if kind.name not in ("workload", "deployment"):
            raise UserError("only workloads and deployments are invoked", ExitCode.USAGE)
        call = wapi.workloads.invoke if kind.name == "workload" else wapi.deployments.invoke
        response = call(found.id, path, method=method, headers=headers, content=data)
        sys.stdout.write(response.text)
        sys.stdout.flush()
        if response.status_code >= 400:
            error: ApiError = error_from_response(response)
            SESSION.errors.print(f"error: {response.status_code} from {short(found)}", markup=False)
            raise typer.Exit(exit_code_for(error))


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon:
        raise UserError(f"a header is 'Name: value', not '{text}'", ExitCode.USAGE)
    return name.strip(), value.strip()
