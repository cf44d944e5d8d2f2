"""The actions that change one thing about a resource without a stack file: revoke an invoke
token, share a resource, rotate a secret, cancel a swap, clone an artifact (docs/cli.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.kinds import Kind, kind_named
from cli.output import Format, emit
from cli.session import SESSION, ExitCode, UserError, handled
from client import Client
from client.sharing import Sharing
from models.sharing import RoleChange, RolesUpdate

SHAREABLE = ("artifact", "collection", "workload", "deployment", "secret")
ROLE_WORDS = ("owner", "user", "consumer", "none")


def read_value(source: Path) -> str:
    """A secret's value from a file or stdin ('-'), never from the command line."""
    text = sys.stdin.read() if str(source) == "-" else source.read_text()
    return text.rstrip("\n")


def _sharing(wapi: Client, kind: Kind) -> Sharing[Any]:
    if kind.name not in SHAREABLE:
        raise UserError(
            f"{kind.plural} have no shared roles; one of: {', '.join(SHAREABLE)}", ExitCode.USAGE
        )
    resource: Sharing[Any] = getattr(wapi, kind.plural)
    return resource


def _role_change(text: str) -> RoleChange:
    username, equals, role = text.partition("=")
    if not equals or role not in ROLE_WORDS:
        raise UserError(
            f"a grant is USER=ROLE with ROLE one of {', '.join(ROLE_WORDS)}, not '{text}'",
            ExitCode.USAGE,
        )
    return RoleChange.model_validate(
        {"username": username, "role": None if role == "none" else role}
    )


def register(app: typer.Typer) -> None:
    revoke = typer.Typer(no_args_is_help=True, help="Revoke an invoke token.")
    app.add_typer(revoke, name="revoke")

    @revoke.command("token")
    @handled
    def revoke_token(
        deployment: Annotated[str, typer.Argument(help="The deployment (name or id).")],
        token: Annotated[str, typer.Argument(help="The token's name or id.")],
    ) -> None:
        """Revoke one of a deployment's invoke tokens; the gateway refuses it from then on."""
        wapi = SESSION.client()
        found = kind_named("deployment").find(wapi, deployment)
        live = [t for t in wapi.deployments.tokens(found.id) if token in (t.id, t.name)]
        if not live:
            raise UserError(
                f"deployment '{found.name}' has no token named or with id '{token}'",
                ExitCode.NOT_FOUND,
            )
        unrevoked = [t for t in live if t.revoked_at is None] or live
        if len(unrevoked) > 1:
            ids = ", ".join(t.id for t in unrevoked)
            raise UserError(f"{len(unrevoked)} tokens are named '{token}' ({ids}); use an id")
        done = wapi.deployments.revoke_token(found.id, unrevoked[0].id)
        SESSION.console.print(f"token/{done.name} ({done.id}) of deployment/{found.name}: revoked")

    @app.command()
    @handled
    def share(
        kind: Annotated[str, typer.Argument(help=", ".join(SHAREABLE))],
        ref: Annotated[str, typer.Argument(help="A name or id.")],
        grant: Annotated[
            list[str] | None,
            typer.Option(
                "--role", "-r", help="USER=owner|user|consumer, or USER=none to remove; repeatable."
            ),
        ] = None,
        output: Annotated[Format, typer.Option("--output", "-o")] = Format.table,
    ) -> None:
        """Grant, change or remove users' roles on a resource, then print who holds which
        role; without --role only print them."""
        wapi = SESSION.client()
        chosen = kind_named(kind)
        resource = _sharing(wapi, chosen)
        found = chosen.find(wapi, ref)
        if grant:
            changes = [_role_change(g) for g in grant]
            resource.share(found.id, RolesUpdate(roles=changes))
        roles = list(resource.roles.all(found.id))
        columns = [("USER", lambda r: r.username), ("ROLE", lambda r: r.role)]
        emit(SESSION.console, roles, output, [*columns, ("GRANTED BY", lambda r: r.granted_by)])

    @app.command()
    @handled
    def rotate(
        secret: Annotated[str, typer.Argument(help="The secret (name or id).")],
        from_file: Annotated[Path, typer.Option(help="The new value's file; '-' reads stdin.")],
    ) -> None:
        """Give a secret a new value (its next version); workloads get it at their next start."""
        wapi = SESSION.client()
        found = kind_named("secret").find(wapi, secret)
        done = wapi.secrets.rotate(found.id, {"value": read_value(from_file)})
        SESSION.console.print(f"secret/{done.name} ({done.id}) version {done.version}")

    @app.command("cancel-swap")
    @handled
    def cancel_swap(
        deployment: Annotated[str, typer.Argument(help="The deployment (name or id).")],
    ) -> None:
        """Cancel a deployment's swap in progress: traffic stays on the current workload."""
        wapi = SESSION.client()
        found = kind_named("deployment").find(wapi, deployment)
        done = wapi.deployments.cancel_swap(found.id)
        SESSION.console.print(
            f"deployment/{found.name}: swap {done.id} {done.status}, "
            f"traffic stays on {done.from_workload_id}"
        )

    @app.command()
    @handled
    def clone(
        artifact: Annotated[str, typer.Argument(help="The artifact (name or id).")],
        name: Annotated[str | None, typer.Option(help="The copy's name (default: the same).")] = (
            None
        ),
    ) -> None:
        """Copy an artifact, draft or registered, into a new draft that can be edited."""
        wapi = SESSION.client()
        found = kind_named("artifact").find(wapi, artifact)
        body: dict[str, Any] = {} if name is None else {"name": name}
        copy = wapi.artifacts.clone(found.id, body)
        SESSION.console.print(f"artifact/{copy.name}: draft {copy.id} (from {found.id})")
