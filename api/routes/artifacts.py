"""`/registry/artifacts/`: drafts are edited in place, registered artifacts never change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response, status

from api.deps import Editor, IfMatchDep, LimitsDep, PageDep, SessionDep, Viewer
from api.pagination import page_of
from api.params import ArtifactId, Search
from api.presenters.artifacts import present_artifact
from catalog.tables import Artifact
from models.artifacts import (
    ArtifactClone,
    ArtifactCreate,
    ArtifactPublic,
    ArtifactReplace,
    ArtifactUpdate,
)
from models.common import Page
from models.spec import SPEC_EXAMPLE, ArtifactType
from models.status import ArtifactStatus
from services import access, artifacts
from services.artifacts import ArtifactFilter

router = APIRouter(prefix="/registry/artifacts", tags=["artifacts"])

CREATE_EXAMPLES = {
    "draft": {
        "summary": "A draft to iterate on",
        "value": {"name": "support-agent", "type": "agent", "spec": SPEC_EXAMPLE},
    },
    "registered": {
        "summary": "Register directly as the next version of a collection",
        "value": {
            "name": "support-agent",
            "type": "agent",
            "status": "registered",
            "collectionId": "65f1c0ffee65f1c0ffee65f1",
            "spec": SPEC_EXAMPLE,
        },
    },
}


def _with_etag(response: Response, row: Artifact) -> ArtifactPublic:
    response.headers["ETag"] = f'"{row.revision}"'
    return present_artifact(row)


@router.post("/", status_code=status.HTTP_201_CREATED, summary="Create an artifact")
async def create_artifact(
    session: SessionDep,
    principal: Editor,
    limits: LimitsDep,
    response: Response,
    data: Annotated[ArtifactCreate, Body(openapi_examples=CREATE_EXAMPLES)],
) -> ArtifactPublic:
    """Create a draft (mutable, unversioned) or, with `status: registered`, an immutable version:
    v1 of a new collection, or the next version of `collectionId`."""
    row = await artifacts.create_artifact(session, data, principal, limits=limits)
    response.headers["Location"] = f"/api/v2/registry/artifacts/{row.id}/"
    return _with_etag(response, row)


@router.get("/", summary="List artifacts")
async def list_artifacts(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    page: PageDep,
    search: Search = None,
    type: Annotated[ArtifactType | None, Query(description="Only this type.")] = None,
    status: Annotated[
        ArtifactStatus | None, Query(description="Only drafts or registered.")
    ] = None,
    collection_id: Annotated[
        str | None, Query(alias="collectionId", max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    ] = None,
) -> Page[ArtifactPublic]:
    """The artifacts you may read (a role on them, or on the collection of a registered one),
    newest first, unless `orderBy` (name, createdAt, updatedAt, status, version, type)."""
    where = ArtifactFilter(search=search, type=type, status=status, collection_id=collection_id)
    rows, total = await artifacts.list_artifacts(session, where, page, principal)
    return page_of(request, rows, total, page, present_artifact)


@router.get("/{artifactId}/", summary="Get an artifact")
async def get_artifact(
    session: SessionDep, principal: Viewer, response: Response, artifact_id: ArtifactId
) -> ArtifactPublic:
    """The `ETag` header holds the revision to send back in `If-Match` when editing."""
    await access.require(session, "artifact", artifact_id, principal, "read")
    return _with_etag(response, await artifacts.get_artifact(session, artifact_id))


@router.patch("/{artifactId}/", summary="Edit or register a draft")
async def update_artifact(
    request: Request,
    session: SessionDep,
    principal: Editor,
    limits: LimitsDep,
    response: Response,
    artifact_id: ArtifactId,
    revision: IfMatchDep,
    data: Annotated[
        ArtifactUpdate,
        Body(
            openapi_examples={
                "register": {"summary": "Register the draft", "value": {"status": "registered"}},
                "rename": {"summary": "Rename", "value": {"name": "support-agent-v2"}},
            }
        ),
    ],
) -> ArtifactPublic:
    """Change fields of a draft; `{"status": "registered"}` registers it as the next version of
    its collection (you must own the collection). Registered artifacts answer 409; a stale
    `If-Match` answers 412."""
    await access.require(session, "artifact", artifact_id, principal, "manage")
    row = await artifacts.update_artifact(
        session, artifact_id, data, principal, expected_revision=revision, limits=limits
    )
    if data.status == "registered":
        request.state.audit_summary = {
            "registered": True,
            "version": row.version,
            "collectionId": row.collection_id,
        }
    return _with_etag(response, row)


@router.put("/{artifactId}/", summary="Replace a draft")
async def replace_artifact(
    session: SessionDep,
    principal: Editor,
    limits: LimitsDep,
    response: Response,
    artifact_id: ArtifactId,
    revision: IfMatchDep,
    data: ArtifactReplace,
) -> ArtifactPublic:
    """Replace every editable field of a draft. Registered artifacts answer 409."""
    await access.require(session, "artifact", artifact_id, principal, "manage")
    row = await artifacts.replace_artifact(
        session, artifact_id, data, principal, expected_revision=revision, limits=limits
    )
    return _with_etag(response, row)


@router.delete("/{artifactId}/", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a draft")
async def delete_artifact(
    session: SessionDep, principal: Editor, artifact_id: ArtifactId, revision: IfMatchDep
) -> None:
    """Delete a draft. Registered artifacts are kept forever (409)."""
    await access.require(session, "artifact", artifact_id, principal, "manage")
    await artifacts.delete_artifact(session, artifact_id, expected_revision=revision)


@router.post(
    "/{artifactId}/clone/", status_code=status.HTTP_201_CREATED, summary="Clone an artifact"
)
async def clone_artifact(
    session: SessionDep,
    principal: Editor,
    response: Response,
    artifact_id: ArtifactId,
    data: Annotated[
        ArtifactClone | None, Body(openapi_examples={"rename": {"value": {"name": "v2-draft"}}})
    ] = None,
) -> ArtifactPublic:
    """A new draft of yours with the same fields (you need to read the source and to be able
    to use the secrets it references); registering it adds a version to the same collection."""
    await access.require(session, "artifact", artifact_id, principal, "read")
    row = await artifacts.clone_artifact(session, artifact_id, data or ArtifactClone(), principal)
    response.headers["Location"] = f"/api/v2/registry/artifacts/{row.id}/"
    return _with_etag(response, row)
