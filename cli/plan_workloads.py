"""Planning one `Workload` document: create, update in place, scale, restart, replace or roll."""

from __future__ import annotations

from collections.abc import Callable

from cli.diff import artifact_content, differences, only_replicas_differ, runtime_groups
from cli.plan import Catalog, Change, Executor, Target, registry_artifact
from cli.session import ExitCode, UserError
from cli.stack import WorkloadDocument
from client import Client
from models.artifacts import ArtifactReplace
from models.deployments import DeploymentPublic, SwapCreate
from models.workloads import InlineArtifact, WorkloadCreate, WorkloadPublic, WorkloadUpdate

ACTIVE = ("submitted", "initializing", "running", "stopping")


def _label(workload: WorkloadPublic) -> str:
    artifact = workload.artifact
    return f"{artifact.name}:v{artifact.version}" if artifact.version else f"{artifact.name}:draft"


def workload_body(doc: WorkloadDocument, artifact_id: str | None) -> WorkloadCreate:
    inline = doc.artifact if isinstance(doc.artifact, InlineArtifact) else None
    return WorkloadCreate(
        name=doc.name,
        description=doc.description,
        importance=doc.importance,
        artifact_id=artifact_id,
        artifact=inline,
        runtime=doc.runtime,
    )


def _leftovers(name: str, others: list[WorkloadPublic], catalog: Catalog) -> list[Change]:
    """Stopped workloads of this name that no deployment serves: what a roll left behind."""
    changes = []
    for workload in others:
        if workload.status in ("stopped", "errored") and not catalog.serving(workload.id):
            doomed = workload.id

            def delete(ex: Executor, doomed: str = doomed) -> None:
                ex.wapi.workloads.delete(doomed)
                ex.say(f"workload/{name}: deleted leftover {doomed}")

            note = f"leftover {doomed} ({workload.status}) of an earlier roll"
            changes.append(Change("Workload", name, "delete", [note], delete))
    return changes


def plan_workload(
    wapi: Client, doc: WorkloadDocument, artifacts: dict[str, Target], catalog: Catalog
) -> tuple[list[Change], Target]:
    key = ("Workload", doc.name)
    inline = doc.artifact if isinstance(doc.artifact, InlineArtifact) else None
    artifact: Target | None = None
    if not isinstance(doc.artifact, InlineArtifact):
        artifact = artifacts.get(doc.artifact) or registry_artifact(wapi, doc.artifact, doc.name)
    registered = artifact is not None and artifact.registered
    live, others = catalog.live_workload(wapi, doc.name)
    leftovers = _leftovers(doc.name, others, catalog)

    def create_new(ex: Executor) -> WorkloadPublic:
        made = ex.wapi.workloads.create(
            workload_body(doc, artifact.resolve(ex) if artifact else None)
        )
        ex.ids[key] = made.id
        ex.say(f"workload/{doc.name}: created {made.id} on {_label(made)}")
        return made

    if live is None:

        def create(ex: Executor) -> None:
            made = create_new(ex)
            if ex.waiting:
                ex.wait_workload(made.id, f"workload/{doc.name}")

        on = "its own draft" if inline else f"artifact/{doc.artifact}"
        change = Change("Workload", doc.name, "create", [f"on {on}"], create)
        return [change, *leftovers], Target(key, None, registered)

    serving = catalog.serving(live.id)
    if any(d.swap is not None and d.swap.status == "starting" for d in serving):
        raise UserError(
            f"workload '{doc.name}': deployment '{serving[0].name}' is swapping; "
            "apply again when the swap is over (or apply with --wait)",
            ExitCode.CONFLICT,
        )
    now, wanted = runtime_groups(live.runtime.container_groups, doc.runtime)
    runtime_lines = differences(now, wanted, "runtime")
    scale_only = bool(runtime_lines) and only_replicas_differ(now, wanted)
    meta_lines = differences(
        {"description": live.description, "importance": live.importance},
        {"description": doc.description, "importance": doc.importance},
    )
    if inline is not None:
        current = wapi.artifacts.get(live.artifact_id)
        if current.status == "registered":
            raise UserError(
                f"workload '{doc.name}': its artifact is registered now (v{current.version}) and "
                "cannot be edited inline; name a registered Artifact document instead",
                ExitCode.CONFLICT,
            )
        artifact_lines = differences(
            artifact_content(current.description, current.type, current.spec),
            artifact_content(inline.description, inline.type, inline.spec),
            "artifact",
        )
        moves, edited = False, bool(artifact_lines)
    else:
        assert artifact is not None
        moves = artifact.id != live.artifact_id
        edited = artifact.edited and not moves
        new = "a new version" if artifact.id is None else artifact.id
        artifact_lines = [f"artifact: {_label(live)} -> {doc.artifact} ({new})"] if moves else []
    lines = [*artifact_lines, *runtime_lines, *meta_lines]

    if moves or (runtime_lines and not scale_only and serving):
        if serving:
            return [_roll(doc, live, serving, lines, create_new, registered), *leftovers], Target(
                key, None, registered, previous_id=live.id
            )

        def replace(ex: Executor) -> None:
            made = create_new(ex)
            ex.wait_workload(made.id, f"workload/{doc.name}")  # before the old one goes
            ex.wapi.workloads.delete(live.id)
            ex.say(f"workload/{doc.name}: deleted the old workload {live.id}")

        lines.append("a new workload; once it runs, the old one is deleted")
        change = Change("Workload", doc.name, "replace", lines, replace)
        return [change, *leftovers], Target(key, None, registered)

    target = Target(key, live.id, registered)
    if not lines and not edited:
        return [Change("Workload", doc.name, "unchanged"), *leftovers], target
    restart = edited or bool(runtime_lines and not scale_only)
    if edited and not artifact_lines:
        lines.append(f"artifact/{doc.artifact} was edited: restart to run it")

    def update(ex: Executor) -> None:
        if inline is not None and artifact_lines:
            ex.wapi.artifacts.replace(
                live.artifact_id,
                ArtifactReplace(
                    name=inline.name or doc.name,
                    description=inline.description,
                    type=inline.type,
                    spec=inline.spec,
                ),
            )
        if runtime_lines or meta_lines:
            patch = WorkloadUpdate(description=doc.description, importance=doc.importance)
            if runtime_lines:
                patch.runtime = doc.runtime
            ex.wapi.workloads.update(live.id, patch)
        label = f"workload/{doc.name}"
        if restart:
            _restart(ex, live, label)
        elif runtime_lines and ex.waiting:
            ex.wait_workload(live.id, label)

    action = "restart" if restart else "scale" if scale_only and not meta_lines else "update"
    return [Change("Workload", doc.name, action, lines, update), *leftovers], target


def _restart(ex: Executor, live: WorkloadPublic, label: str) -> None:
    status = ex.wapi.workloads.get(live.id).status
    if status in ACTIVE:
        if status != "stopping":
            ex.wapi.workloads.stop(live.id)
        ex.wait_workload(live.id, label, "stopped")
    ex.wapi.workloads.start(live.id)
    ex.say(f"{label}: restarted")
    if ex.waiting:
        ex.wait_workload(live.id, label)


def _roll(
    doc: WorkloadDocument,
    live: WorkloadPublic,
    serving: list[DeploymentPublic],
    lines: list[str],
    create_new: Callable[[Executor], WorkloadPublic],
    registered: bool,
) -> Change:
    """A new workload of the same name, the deployment swapped to it, the old one deleted."""
    if not registered:
        raise UserError(
            f"workload '{doc.name}' is served by deployment '{serving[0].name}', so its artifact "
            "must be registered (status: registered)",
        )
    if len(serving) > 1:
        names = ", ".join(d.name for d in serving)
        raise UserError(
            f"workload '{doc.name}' is served by several deployments ({names}); swap them "
            "one by one (wapi swap)",
            ExitCode.CONFLICT,
        )
    deployment = serving[0]

    def roll(ex: Executor) -> None:
        made = create_new(ex)
        if ex.waiting:  # the swap would wait too; this shows its replicas coming up
            ex.wait_workload(made.id, f"workload/{doc.name}")
        swap = ex.wapi.deployments.swap(deployment.id, SwapCreate(workload_id=made.id))
        ex.say(f"deployment/{deployment.name}: swapping to {made.id} (swap {swap.id})")
        if not ex.waiting:
            ex.say(f"workload/{doc.name}: the next apply deletes {live.id} once it has stopped")
            return
        ex.wait_swap(deployment.id, swap.id, f"deployment/{deployment.name}")
        ex.wapi.workloads.delete(live.id)
        ex.say(f"workload/{doc.name}: deleted the old workload {live.id}")

    steps = f"a new workload; deployment/{deployment.name} swaps to it; the old one is deleted"
    return Change("Workload", doc.name, "roll", [*lines, steps], roll)
