"""A whole stack's plan: artifacts, workloads, deployments in that order; and its teardown."""

from __future__ import annotations

import contextlib

from cli.diff import differences
from cli.plan import Catalog, Change, Executor, Target, plan_artifact
from cli.plan_workloads import plan_workload
from cli.session import ExitCode, UserError
from cli.stack import DeploymentDocument, Stack
from client import Client, NotFoundError
from models.deployments import (
    DeploymentCreate,
    DeploymentPublic,
    DeploymentUpdate,
    HealthSettings,
    SwapCreate,
)
from models.workloads import InlineArtifact


def plan(wapi: Client, stack: Stack) -> list[Change]:
    catalog = Catalog(list(wapi.deployments.list.all()))
    changes: list[Change] = []
    artifacts: dict[str, Target] = {}
    for artifact_doc in stack.artifacts:
        change, artifacts[artifact_doc.name] = plan_artifact(wapi, artifact_doc)
        changes.append(change)
    workloads: dict[str, Target] = {}
    for workload_doc in stack.workloads:
        found, workloads[workload_doc.name] = plan_workload(wapi, workload_doc, artifacts, catalog)
        changes += found
    for deployment_doc in stack.deployments:
        changes.append(_plan_deployment(wapi, deployment_doc, workloads, catalog))
    return changes


def _workload_target(wapi: Client, name: str, catalog: Catalog) -> Target:
    live, _ = catalog.live_workload(wapi, name)
    if live is None:
        raise UserError(
            f"no workload named '{name}' in the file or the catalog", ExitCode.NOT_FOUND
        )
    return Target(("Workload", name), live.id, registered=live.artifact.status == "registered")


def _plan_deployment(
    wapi: Client, doc: DeploymentDocument, workloads: dict[str, Target], catalog: Catalog
) -> Change:
    target = workloads.get(doc.workload) or _workload_target(wapi, doc.workload, catalog)
    if not target.registered:
        raise UserError(
            f"deployment '{doc.name}': workload '{doc.workload}' runs a draft artifact; "
            "deployments need a registered one (status: registered)"
        )
    named = [d for d in catalog.deployments if d.name == doc.name]
    if len(named) > 1:
        ids = ", ".join(d.id for d in named)
        raise UserError(
            f"{len(named)} deployments are named '{doc.name}' ({ids})", ExitCode.CONFLICT
        )
    label = f"deployment/{doc.name}"
    if not named:

        def create(ex: Executor) -> None:
            body = DeploymentCreate(
                name=doc.name,
                description=doc.description,
                workload_id=target.resolve(ex),
                health=doc.health,
            )
            made = ex.wapi.deployments.create(body)
            ex.ids[("Deployment", doc.name)] = made.id
            ex.say(f"{label}: created {made.id}, endpoint {made.endpoint}")
            if ex.waiting:
                ex.wait_deployment(made.id, label)

        return Change(
            "Deployment", doc.name, "create", [f"serving workload/{doc.workload}"], create
        )
    existing = named[0]
    if existing.swap is not None and existing.swap.status == "starting":
        raise UserError(
            f"deployment '{doc.name}' is swapping; apply again when the swap is over",
            ExitCode.CONFLICT,
        )
    lines = differences(_settings(existing), _settings(doc))
    if target.previous_id == existing.workload_id:
        return Change(
            "Deployment", doc.name, "swap", [*lines, f"by workload/{doc.workload}'s roll"]
        )
    swap = target.id != existing.workload_id
    if not lines and not swap:
        return Change("Deployment", doc.name, "unchanged")

    def update(ex: Executor) -> None:
        if lines:
            patch = DeploymentUpdate(description=doc.description, health=doc.health)
            ex.wapi.deployments.update(existing.id, patch)
        if swap:
            to = target.resolve(ex)
            started = ex.wapi.deployments.swap(existing.id, SwapCreate(workload_id=to))
            ex.say(f"{label}: swapping to {to} (swap {started.id})")
            if ex.waiting:
                ex.wait_swap(existing.id, started.id, label)

    if swap:
        lines.append(f"workload: {existing.workload_id} -> workload/{doc.workload}")
    return Change("Deployment", doc.name, "swap" if swap else "update", lines, update)


SETTINGS = set(HealthSettings.model_fields)


def _settings(deployment: DeploymentPublic | DeploymentDocument) -> dict[str, object]:
    # The settings only: a deployment's `health` also says the verdict of its checks.
    health = HealthSettings.model_validate(deployment.health.model_dump(include=SETTINGS))
    return {"description": deployment.description, "health": health.model_dump(by_alias=True)}


def teardown(wapi: Client, stack: Stack) -> list[Change]:
    """Deployments, then workloads, then draft artifacts; registered versions are kept."""
    catalog = Catalog(list(wapi.deployments.list.all()))
    doomed = {d.id for d in catalog.deployments if stack.deployments and _in(d.name, stack)}
    changes: list[Change] = []
    for deployment in catalog.deployments:
        if deployment.id in doomed:
            changes.append(_delete_deployment(deployment))
    for doc in stack.deployments:
        if not any(d.name == doc.name for d in catalog.deployments):
            changes.append(Change("Deployment", doc.name, "absent"))
    for workload_doc in stack.workloads:
        found = [w for w in wapi.workloads.list.all(search=workload_doc.name)]
        found = [w for w in found if w.name == workload_doc.name]
        if not found:
            changes.append(Change("Workload", workload_doc.name, "absent"))
        inline = isinstance(workload_doc.artifact, InlineArtifact)
        for workload in found:
            kept = [d.name for d in catalog.serving(workload.id) if d.id not in doomed]
            if kept:
                raise UserError(
                    f"workload '{workload.name}' ({workload.id}) is served by deployment "
                    f"'{kept[0]}', which the file does not delete",
                    ExitCode.CONFLICT,
                )
            artifact = workload.artifact_id if inline else None
            changes.append(_delete_workload(workload.name, workload.id, artifact))
    for artifact_doc in stack.artifacts:
        if artifact_doc.status == "registered":
            note = "registered versions are immutable and kept"
            changes.append(Change("Artifact", artifact_doc.name, "kept", [note]))
            continue
        drafts = wapi.artifacts.list.all(search=artifact_doc.name, status="draft")
        ids = [a.id for a in drafts if a.name == artifact_doc.name]
        changes += [_delete_draft(artifact_doc.name, i) for i in ids]
        if not ids:
            changes.append(Change("Artifact", artifact_doc.name, "absent"))
    return changes


def _in(name: str, stack: Stack) -> bool:
    return any(doc.name == name for doc in stack.deployments)


def _delete_deployment(deployment: DeploymentPublic) -> Change:
    def delete(ex: Executor) -> None:
        ex.wapi.deployments.delete(deployment.id)
        ex.say(f"deployment/{deployment.name}: deleted {deployment.id}")

    return Change("Deployment", deployment.name, "delete", [deployment.id], delete)


def _delete_workload(name: str, workload_id: str, own_artifact: str | None) -> Change:
    def delete(ex: Executor) -> None:
        ex.wapi.workloads.delete(workload_id)
        ex.say(f"workload/{name}: deleted {workload_id}")
        if own_artifact is not None:
            with contextlib.suppress(NotFoundError):  # gone with its workload
                ex.wapi.artifacts.delete(own_artifact)

    details = [workload_id] + (["and its own draft artifact"] if own_artifact else [])
    return Change("Workload", name, "delete", details, delete)


def _delete_draft(name: str, artifact_id: str) -> Change:
    def delete(ex: Executor) -> None:
        ex.wapi.artifacts.delete(artifact_id)
        ex.say(f"artifact/{name}: deleted draft {artifact_id}")

    return Change("Artifact", name, "delete", [f"draft {artifact_id}"], delete)
