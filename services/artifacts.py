"""Artifacts: mutable drafts, immutable registered versions, and their collections.

Why one module of this length: every write of an artifact passes the same spec, secret,
limit and collection checks, which read best next to the writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import Artifact, ArtifactCollection, Workload, utcnow
from models.artifacts import ArtifactClone, ArtifactCreate, ArtifactReplace, ArtifactUpdate
from models.spec import ArtifactSpec, ArtifactType
from models.status import ArtifactStatus
from services import access, secrets, sharing
from services.api_keys import Principal
from services.errors import (
    ConflictError,
    InvalidInputError,
    Loc,
    NotFoundError,
    PreconditionFailedError,
)
from services.limits import Limits
from services.listing import PageRequest, fetch_page, matching
from services.spec_rules import normalized, spec_problems


@dataclass(frozen=True)
class ArtifactFilter:
    search: str | None = None
    type: ArtifactType | None = None
    status: ArtifactStatus | None = None
    collection_id: str | None = None


SORT_KEYS = {
    "name": Artifact.name,
    "createdAt": Artifact.created_at,
    "updatedAt": Artifact.updated_at,
    "status": Artifact.status,
    "version": Artifact.version,
    "type": Artifact.type,
}


async def get_artifact(session: AsyncSession, artifact_id: str) -> Artifact:
    artifact = await session.get(Artifact, artifact_id)
    if artifact is None:
        raise NotFoundError("artifact", artifact_id)
    return artifact


async def list_artifacts(
    session: AsyncSession, where: ArtifactFilter, page: PageRequest, principal: Principal
) -> tuple[list[Artifact], int]:
    """The artifacts the caller may read that match `where`."""
    statement = select(Artifact)
    visible = access.readable("artifact", Artifact.id, principal)
    if visible is not None:
        statement = statement.where(visible)
    if where.search:
        statement = statement.where(
            matching(where.search, Artifact.name, Artifact.description, Artifact.id)
        )
    if where.type:
        statement = statement.where(Artifact.type == where.type)
    if where.status:
        statement = statement.where(Artifact.status == where.status)
    if where.collection_id:
        statement = statement.where(Artifact.collection_id == where.collection_id)
    return await fetch_page(
        session,
        statement,
        page,
        sort_keys=SORT_KEYS,
        default_order=[Artifact.created_at.desc()],
        tiebreak=Artifact.id,
    )


async def _checked_spec(
    session: AsyncSession,
    spec: ArtifactSpec,
    artifact_type: ArtifactType,
    loc: Loc,
    principal: Principal,
    limits: Limits,
) -> ArtifactSpec:
    """The normalized spec, if it follows the spec rules and the installation's limits (size,
    registries) and references only secrets the caller may use: one 422 for every problem."""
    spec = normalized(spec)
    problems = spec_problems(spec, artifact_type, loc)
    problems += limits.image_problems(spec, loc)
    problems += limits.size_problems(loc, _dump(spec))
    problems += await secrets.unusable_secrets(
        session, secrets.spec_references(spec, loc), principal
    )
    if problems:
        raise InvalidInputError(problems)
    return spec


async def create_artifact(
    session: AsyncSession,
    data: ArtifactCreate,
    principal: Principal,
    *,
    limits: Limits = Limits(),
    spec_loc: Loc = ("body", "spec"),
) -> Artifact:
    """Check the spec (at `spec_loc` in the request) and write the artifact; the caller owns
    it (and, registering into a new collection, the collection)."""
    spec = await _checked_spec(session, data.spec, data.type, spec_loc, principal, limits)
    if data.collection_id is not None:
        await _target_collection(session, data.collection_id, data.type, principal)
    artifact = Artifact(
        name=data.name,
        description=data.description,
        type=data.type,
        status="draft",
        collection_id=data.collection_id,
        spec=_dump(spec),
        created_by=principal.username,
    )
    session.add(artifact)
    await session.flush()
    sharing.grant_owner(session, "artifact", artifact.id, principal.username)
    if data.status == "registered":
        await _register(session, artifact, principal)
    return artifact


async def update_artifact(
    session: AsyncSession,
    artifact_id: str,
    data: ArtifactUpdate,
    principal: Principal,
    *,
    expected_revision: int | None,
    limits: Limits = Limits(),
) -> Artifact:
    artifact = await _editable(session, artifact_id, expected_revision)
    changes = {
        field: value
        for field, value in data.model_dump(exclude_unset=True, exclude={"spec", "status"}).items()
        # An explicit null leaves a field unchanged, except the collection, where null
        # means "register into a new collection".
        if value is not None or field == "collection_id"
    }
    artifact_type: ArtifactType = changes.get("type") or artifact.type
    if data.spec is not None:
        checked = await _checked_spec(
            session, data.spec, artifact_type, ("body", "spec"), principal, limits
        )
        artifact.spec = _dump(checked)
    elif "type" in changes:
        # A new type may reject the stored spec; check it under the new type's rules.
        stored = ArtifactSpec.model_validate(artifact.spec)
        problems = spec_problems(stored, artifact_type, ("body", "type"))
        if problems:
            raise InvalidInputError(problems)
    collection_id = changes.get("collection_id", artifact.collection_id)
    if collection_id is not None and ({"collection_id", "type"} & changes.keys()):
        await _target_collection(session, collection_id, artifact_type, principal)
    for field, value in changes.items():
        setattr(artifact, field, value)
    artifact.updated_at = utcnow()
    await session.flush()
    if data.status == "registered":
        await _register(session, artifact, principal)
    return artifact


async def replace_artifact(
    session: AsyncSession,
    artifact_id: str,
    data: ArtifactReplace,
    principal: Principal,
    *,
    expected_revision: int | None,
    limits: Limits = Limits(),
) -> Artifact:
    artifact = await _editable(session, artifact_id, expected_revision)
    spec = await _checked_spec(session, data.spec, data.type, ("body", "spec"), principal, limits)
    if data.collection_id is not None:
        await _target_collection(session, data.collection_id, data.type, principal)
    artifact.name = data.name
    artifact.description = data.description
    artifact.type = data.type
    artifact.collection_id = data.collection_id
    artifact.spec = _dump(spec)
    artifact.updated_at = utcnow()
    await session.flush()
    return artifact


async def delete_artifact(
    session: AsyncSession, artifact_id: str, *, expected_revision: int | None
) -> None:
    artifact = await _editable(session, artifact_id, expected_revision, action="deleted")
    users = list(
        await session.scalars(
            select(Workload.id).where(Workload.artifact_id == artifact_id).limit(20)
        )
    )
    if users:
        raise ConflictError(
            f"artifact '{artifact_id}' is used by workloads {users}; delete them first"
        )
    await session.delete(artifact)
    await sharing.forget(session, "artifact", artifact_id)
    await session.flush()


async def clone_artifact(
    session: AsyncSession, artifact_id: str, data: ArtifactClone, principal: Principal
) -> Artifact:
    """A new draft with the source's fields, owned by the caller; it registers into the
    source's collection (if the caller owns that). The secrets the source references must be
    shared with the caller: a clone would otherwise hand their values to its runner."""
    source = await get_artifact(session, artifact_id)
    await secrets.require_usable(
        session,
        secrets.spec_references(ArtifactSpec.model_validate(source.spec), ()),
        principal,
        f"artifact '{artifact_id}'",
    )
    clone = Artifact(
        name=data.name or source.name,
        description=source.description,
        type=source.type,
        status="draft",
        collection_id=source.collection_id,
        spec=dict(source.spec),
        created_by=principal.username,
    )
    session.add(clone)
    await session.flush()
    sharing.grant_owner(session, "artifact", clone.id, principal.username)
    return clone


async def _editable(
    session: AsyncSession,
    artifact_id: str,
    expected_revision: int | None,
    action: str = "changed",
) -> Artifact:
    artifact = await get_artifact(session, artifact_id)
    if expected_revision is not None and artifact.revision != expected_revision:
        raise PreconditionFailedError(
            f"artifact '{artifact_id}' was changed since you read it (your If-Match is "
            f'"{expected_revision}", it is now "{artifact.revision}"); read it again and retry'
        )
    if artifact.status == "registered":
        raise ConflictError(
            f"artifact '{artifact_id}' is registered (version {artifact.version}) and cannot be "
            f"{action}; clone it to make a new draft"
        )
    return artifact


async def _target_collection(
    session: AsyncSession,
    collection_id: str,
    artifact_type: str,
    principal: Principal,
    need: access.Need = "read",
) -> ArtifactCollection:
    """The collection a draft is aimed at (the caller must see it) or registered into (the
    caller must own it)."""
    loc = ("body", "collectionId")
    await access.require_reference(session, "collection", collection_id, principal, need, loc)
    collection = await session.get(ArtifactCollection, collection_id)
    assert collection is not None  # access.require found it
    if collection.type != artifact_type:
        raise InvalidInputError.at(
            ("body", "collectionId"),
            f"collection '{collection_id}' holds {collection.type} artifacts, not {artifact_type}",
        )
    return collection


async def _register(session: AsyncSession, artifact: Artifact, principal: Principal) -> None:
    """Registering adds a version to a collection: a new one the caller then owns, or one
    they own already."""
    if artifact.collection_id is None:
        collection = ArtifactCollection(
            name=artifact.name, type=artifact.type, created_by=principal.username
        )
        session.add(collection)
        await session.flush()
        sharing.grant_owner(session, "collection", collection.id, principal.username)
        artifact.collection_id = collection.id
    else:
        await _target_collection(
            session, artifact.collection_id, artifact.type, principal, need="manage"
        )
    # Why a single UPDATE ... RETURNING: the increment happens under the row's write lock, so
    # concurrent registrations into one collection get distinct, consecutive numbers.
    version = await session.scalar(
        update(ArtifactCollection)
        .where(ArtifactCollection.id == artifact.collection_id)
        .values(last_version=ArtifactCollection.last_version + 1, updated_at=utcnow())
        .returning(ArtifactCollection.last_version)
    )
    artifact.status = "registered"
    artifact.version = version
    artifact.registered_at = artifact.updated_at = utcnow()
    await session.flush()


def _dump(spec: ArtifactSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)
