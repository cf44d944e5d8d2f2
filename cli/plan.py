"""`wapi apply`'s plan: compare each document of a stack with what the API has, by name, and
say what would change and how (docs/cli.md, "How apply decides").

Artifacts first, then workloads, then deployments, because each points at the one before. A
registered artifact that changed becomes its collection's next version; a workload whose
artifact moved (or whose runtime changed beyond replica counts) is rolled when a deployment
serves it (a new workload of the same name, a swap, the old one deleted) and replaced when not;
a draft edited in place restarts the workloads running it; replica counts scale live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cli.diff import artifact_content, differences
from cli.session import ExitCode, UserError
from cli.stack import ArtifactDocument
from client import Client
from models.artifacts import ArtifactCreate, ArtifactReplace
from models.deployments import DeploymentPublic
from models.status import WorkloadStatus
from models.workloads import WorkloadPublic

Key = tuple[str, str]  # (kind, name)


class Executor(Protocol):
    """What running a plan needs (`cli/apply.py`): the client, the ids made so far, waits."""

    wapi: Client
    ids: dict[Key, str]
    waiting: bool

    def wait_workload(self, workload_id: str, label: str, *statuses: WorkloadStatus) -> None: ...
    def wait_deployment(self, deployment_id: str, label: str) -> None: ...
    def wait_swap(self, deployment_id: str, swap_id: str, label: str) -> None: ...
    def say(self, text: str) -> None: ...


@dataclass
class Change:
    kind: str
    name: str
    action: str  # create, unchanged, update, scale, restart, new version, roll, replace, delete
    details: list[str] = field(default_factory=list)
    run: Callable[[Executor], None] | None = None

    @property
    def label(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


@dataclass(frozen=True)
class Target:
    """Where a reference points after the plan runs: an id now, or one this apply makes."""

    key: Key
    id: str | None  # None: made by this apply (read `Executor.ids` when running)
    registered: bool
    edited: bool = False  # a draft changed in place: its workloads restart
    previous_id: str | None = None  # a workload being rolled: the one deployments use now

    def resolve(self, ex: Executor) -> str:
        return self.id or ex.ids[self.key]


def _one(items: list[Any], what: str) -> Any | None:
    if len(items) > 1:
        ids = ", ".join(item.id for item in items)
        raise UserError(f"{len(items)} {what} ({ids}): names must be unique", ExitCode.CONFLICT)
    return items[0] if items else None


def _registered_versions(wapi: Client, name: str, collection_id: str | None) -> list[Any]:
    found = [
        a
        for a in wapi.artifacts.list.all(search=name, status="registered")
        if a.name == name and collection_id in (None, a.collection_id)
    ]
    if len({a.collection_id for a in found}) > 1:
        ids = ", ".join(sorted({str(a.collection_id) for a in found}))
        raise UserError(
            f"artifacts named '{name}' are in several collections ({ids}); "
            "set collectionId in the document",
            ExitCode.CONFLICT,
        )
    return found


def plan_artifact(wapi: Client, doc: ArtifactDocument) -> tuple[Change, Target]:
    key = ("Artifact", doc.name)
    content = artifact_content(doc.description, doc.type, doc.spec)
    body = ArtifactCreate(
        name=doc.name,
        description=doc.description,
        type=doc.type,
        status=doc.status,
        collection_id=doc.collection_id,
        spec=doc.spec,
    )

    def create(collection_id: str | None) -> Callable[[Executor], None]:
        def run(ex: Executor) -> None:
            made = ex.wapi.artifacts.create(
                body.model_copy(update={"collection_id": collection_id})
            )
            ex.ids[key] = made.id
            version = f" v{made.version}" if made.version else ""
            ex.say(f"artifact/{doc.name}: {made.status}{version} ({made.id})")

        return run

    if doc.status == "registered":
        versions = _registered_versions(wapi, doc.name, doc.collection_id)
        if not versions:
            where = f"collection {doc.collection_id}" if doc.collection_id else "a new collection"
            change = Change("Artifact", doc.name, "create", [f"register it in {where}"])
            change.run = create(doc.collection_id)
            return change, Target(key, None, registered=True)
        latest = max(versions, key=lambda a: a.version or 0)
        lines = differences(artifact_content(latest.description, latest.type, latest.spec), content)
        if not lines:
            return Change("Artifact", doc.name, "unchanged"), Target(key, latest.id, True)
        details = [f"v{latest.version} -> v{(latest.version or 0) + 1}", *lines]
        change = Change("Artifact", doc.name, "new version", details, create(latest.collection_id))
        return change, Target(key, None, registered=True)

    draft = _one(
        [a for a in wapi.artifacts.list.all(search=doc.name, status="draft") if a.name == doc.name],
        f"draft artifacts are named '{doc.name}'",
    )
    if draft is None:
        return Change("Artifact", doc.name, "create", ["a draft"], create(None)), Target(
            key, None, registered=False
        )
    lines = differences(artifact_content(draft.description, draft.type, draft.spec), content)
    if not lines:
        return Change("Artifact", doc.name, "unchanged"), Target(key, draft.id, False)
    replace = ArtifactReplace.model_validate(body.model_dump(exclude={"status"}))

    def edit(ex: Executor) -> None:
        ex.wapi.artifacts.replace(draft.id, replace)

    change = Change("Artifact", doc.name, "update", lines, edit)
    return change, Target(key, draft.id, registered=False, edited=True)


def registry_artifact(wapi: Client, name: str, workload: str) -> Target:
    """An artifact the file does not define: its newest registered version, else its draft."""
    key = ("Artifact", name)
    versions = _registered_versions(wapi, name, None)
    if versions:
        return Target(key, max(versions, key=lambda a: a.version or 0).id, registered=True)
    drafts = [a for a in wapi.artifacts.list.all(search=name, status="draft") if a.name == name]
    draft = _one(drafts, f"draft artifacts are named '{name}'")
    if draft is None:
        raise UserError(
            f"workload '{workload}': no artifact named '{name}' in the file or the registry",
            ExitCode.NOT_FOUND,
        )
    return Target(key, draft.id, registered=False)


@dataclass
class Catalog:
    """What exists, read once per apply."""

    deployments: list[DeploymentPublic]

    def serving(self, workload_id: str) -> list[DeploymentPublic]:
        return [d for d in self.deployments if d.workload_id == workload_id]

    def live_workload(self, wapi: Client, name: str) -> tuple[Any | None, list[WorkloadPublic]]:
        """The workload a name means (the one a deployment serves, else the newest) and the
        others of that name: leftovers of an earlier roll."""
        found = [w for w in wapi.workloads.list.all(search=name) if w.name == name]
        served = [w for w in found if self.serving(w.id)]
        live = _one(served, f"workloads named '{name}' are served by deployments")
        if live is None and found:
            live = max(found, key=lambda w: w.created_at)
        return live, [w for w in found if live is None or w.id != live.id]
