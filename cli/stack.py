"""The stack file `wapi apply -f` reads: YAML documents, each a `kind` and the API's own fields.

An `Artifact` document is the body of `POST /registry/artifacts/`, a `Workload` the body of
`POST /console/workloads/`, a `Deployment` the body of `POST /console/deployments/`, except
that they point at each other by name (`artifact: hello`, `workload: hello`) instead of by
id: a name is the stable identity `apply` matches against what exists. docs/cli.md has the
format and an example.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, TypeAdapter, ValidationError

from cli.session import ExitCode, UserError
from models.artifacts import Description, Name, ResourceId
from models.common import InputModel
from models.deployments import HealthSettings
from models.spec import ArtifactSpec, ArtifactType
from models.status import ArtifactStatus
from models.workloads import Importance, InlineArtifact, WorkloadRuntime

API_VERSION = "wapi/v1"


class StackDocument(InputModel):
    api_version: Literal["wapi/v1"] = Field("wapi/v1", description="Optional; the format.")
    name: Name = Field(description="The identity `apply` matches on.")
    description: Description = ""


class ArtifactDocument(StackDocument):
    """A draft (edited in place) or, with `status: registered`, a lineage of versions: a changed
    document registers the next version in the same collection."""

    kind: Literal["Artifact"]
    type: ArtifactType = "generic"
    status: ArtifactStatus = "draft"
    collection_id: ResourceId | None = Field(
        None, description="Only when more than one collection holds artifacts of this name."
    )
    spec: ArtifactSpec


class WorkloadDocument(StackDocument):
    kind: Literal["Workload"]
    importance: Importance = "low"
    artifact: Name | InlineArtifact = Field(
        description="The name of an Artifact (in this file or the registry), or an inline "
        "artifact (the workload's own draft)."
    )
    runtime: WorkloadRuntime = Field(default_factory=WorkloadRuntime)


class DeploymentDocument(StackDocument):
    kind: Literal["Deployment"]
    workload: Name = Field(description="The name of a Workload in this file or the catalog.")
    health: HealthSettings = Field(default_factory=HealthSettings)


Document = Annotated[
    ArtifactDocument | WorkloadDocument | DeploymentDocument, Field(discriminator="kind")
]
_DOCUMENT: TypeAdapter[Document] = TypeAdapter(Document)


class Stack:
    """The documents of one file, by kind, in file order."""

    def __init__(self, documents: list[Document]) -> None:
        self.artifacts = [d for d in documents if isinstance(d, ArtifactDocument)]
        self.workloads = [d for d in documents if isinstance(d, WorkloadDocument)]
        self.deployments = [d for d in documents if isinstance(d, DeploymentDocument)]

    def artifact(self, name: str) -> ArtifactDocument | None:
        return next((d for d in self.artifacts if d.name == name), None)

    def workload(self, name: str) -> WorkloadDocument | None:
        return next((d for d in self.workloads if d.name == name), None)


def _where(index: int, raw: object) -> str:
    if isinstance(raw, dict) and raw.get("kind") and raw.get("name"):
        return f"document {index} ({raw['kind']} '{raw['name']}')"
    return f"document {index}"


def parse(text: str, source: str = "stack") -> Stack:
    """Validate every document; a problem names its document and the field's path."""
    try:
        raws = [raw for raw in yaml.safe_load_all(text) if raw is not None]
    except yaml.YAMLError as error:
        raise UserError(f"{source}: not valid YAML: {error}") from None
    problems: list[str] = []
    documents: list[Document] = []
    for index, raw in enumerate(raws, start=1):
        try:
            documents.append(_DOCUMENT.validate_python(raw))
        except ValidationError as error:  # the union puts the kind first in locations
            for item in error.errors():
                kind = raw.get("kind") if isinstance(raw, dict) else None
                loc = item["loc"][1:] if item["loc"][:1] == (kind,) else item["loc"]
                path = ".".join(str(part) for part in loc)
                problems.append(f"{source}: {_where(index, raw)}: {path}: {item['msg']}")
    for kind, name in _duplicates(documents):
        problems.append(f"{source}: more than one {kind} named '{name}'")
    if problems:
        raise UserError("\n".join(problems))
    if not documents:
        raise UserError(f"{source}: no documents")
    return Stack(documents)


def _duplicates(documents: list[Document]) -> list[tuple[str, str]]:
    counts = Counter((d.kind, d.name) for d in documents)
    return [key for key, count in counts.items() if count > 1]


def load(path: Path) -> Stack:
    source = "stdin" if str(path) == "-" else str(path)
    if source == "stdin":
        import sys

        return parse(sys.stdin.read(), source)
    try:
        return parse(path.read_text(), source)
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}", ExitCode.USAGE) from None
