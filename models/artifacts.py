"""Artifacts and artifact collections on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from models.common import CamelModel, InputModel, UserRef
from models.spec import SPEC_EXAMPLE, ArtifactSpec, ArtifactType
from models.status import ArtifactStatus

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Description = Annotated[str, StringConstraints(max_length=10000)]
ResourceId = Annotated[str, StringConstraints(min_length=1, max_length=64)]

_TYPE_DOC = "What kind of service this is; each type has its own rules (see docs/artifacts.md)."
_COLLECTION_DOC = (
    "The collection the artifact is (or, for a draft, will be) registered into; "
    "null registers into a new collection."
)


class ArtifactCreate(InputModel):
    """Create a draft, or register directly with `status: registered`."""

    name: Name = Field(examples=["support-agent"])
    description: Description = ""
    type: ArtifactType = Field("generic", description=_TYPE_DOC)
    status: ArtifactStatus = "draft"
    collection_id: ResourceId | None = Field(None, description=_COLLECTION_DOC)
    spec: ArtifactSpec = Field(examples=[SPEC_EXAMPLE])


class ArtifactReplace(InputModel):
    """Replace every editable field of a draft."""

    name: Name = Field(examples=["support-agent"])
    description: Description = ""
    type: ArtifactType = Field("generic", description=_TYPE_DOC)
    collection_id: ResourceId | None = Field(None, description=_COLLECTION_DOC)
    spec: ArtifactSpec = Field(examples=[SPEC_EXAMPLE])


class ArtifactUpdate(InputModel):
    """Change some fields of a draft, or register it with `{"status": "registered"}`. A field
    left out or null stays unchanged, except `collectionId`, where null means a new collection."""

    name: Name | None = Field(None, examples=["support-agent"])
    description: Description | None = None
    type: ArtifactType | None = Field(None, description=_TYPE_DOC)
    status: ArtifactStatus | None = Field(None, description="`registered` registers a draft.")
    collection_id: ResourceId | None = Field(None, description=_COLLECTION_DOC)
    spec: ArtifactSpec | None = Field(None, examples=[SPEC_EXAMPLE])


class ArtifactClone(InputModel):
    name: Name | None = Field(
        None, description="Defaults to the source's name.", examples=["support-agent-next"]
    )


class ArtifactPublic(CamelModel):
    id: str = Field(examples=["65f1c0ffee65f1c0ffee65f1"])
    name: str
    description: str
    type: ArtifactType
    status: ArtifactStatus
    version: int | None = Field(description="Set when registered: 1, 2, ... within its collection.")
    collection_id: str | None = Field(description=_COLLECTION_DOC)
    spec: ArtifactSpec
    creator: UserRef
    created_at: datetime
    updated_at: datetime
    registered_at: datetime | None


class CollectionPublic(CamelModel):
    """The version history of one registered artifact lineage."""

    id: str
    name: str
    type: ArtifactType
    last_version_number: int = Field(description="Version of the newest registered artifact.")
    num_artifacts: int = Field(description="Number of registered versions.")
    creator: UserRef
    created_at: datetime
    updated_at: datetime
