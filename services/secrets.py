"""Secrets: values encrypted at rest, referenced by id from environment variables.

Values are decrypted in one place only, `resolve`, which the supervising activity calls just
before it hands a run plan to a runtime. Everything else sees metadata and ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Text, cast, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import Artifact, ResourceRole, Secret, Workload, new_id, utcnow
from models.secrets import SecretCreate, SecretRotate
from models.spec import ArtifactSpec, EnvVar, SecretEnvVar
from models.workloads import WorkloadRuntime
from services import access, sharing
from services.api_keys import Principal
from services.errors import (
    ConflictError,
    FieldProblem,
    InvalidInputError,
    Loc,
    NotFoundError,
    PermissionDeniedError,
)
from services.keyring import Keyring
from services.listing import PageRequest, fetch_page, matching

SORT_KEYS = {
    "name": Secret.name,
    "createdAt": Secret.created_at,
    "updatedAt": Secret.updated_at,
    "version": Secret.version,
}
# Where a secret is referenced: (JSON path of its `secretId`, the secret id).
Reference = tuple[Loc, str]


async def create_secret(
    session: AsyncSession, data: SecretCreate, principal: Principal, keyring: Keyring
) -> Secret:
    """Store the value encrypted; the caller owns the secret."""
    if await session.scalar(select(Secret.id).where(Secret.name == data.name)):
        raise _duplicate(data.name)
    secret_id = new_id()  # chosen first: the ciphertext is bound to it
    row = Secret(
        id=secret_id,
        name=data.name,
        description=data.description,
        version=1,
        ciphertext=keyring.encrypt(secret_id, data.value.get_secret_value()),
        created_by=principal.username,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent create with the same name won
        raise _duplicate(data.name) from None
    sharing.grant_owner(session, "secret", secret_id, principal.username)
    return row


async def get_secret(session: AsyncSession, secret_id: str) -> Secret:
    row = await session.get(Secret, secret_id)
    if row is None:
        raise NotFoundError("secret", secret_id)
    return row


async def list_secrets(
    session: AsyncSession, search: str | None, page: PageRequest, principal: Principal
) -> tuple[list[Secret], int]:
    """Metadata of the secrets the caller may read."""
    statement = select(Secret)
    visible = access.readable("secret", Secret.id, principal)
    if visible is not None:
        statement = statement.where(visible)
    if search:
        statement = statement.where(matching(search, Secret.name, Secret.id))
    return await fetch_page(
        session,
        statement,
        page,
        sort_keys=SORT_KEYS,
        default_order=[Secret.name.asc()],
        tiebreak=Secret.id,
    )


async def rotate_secret(
    session: AsyncSession, secret_id: str, data: SecretRotate, keyring: Keyring
) -> Secret:
    """A new value and version; running containers keep the old value until their next start."""
    row = await get_secret(session, secret_id)
    ciphertext = keyring.encrypt(secret_id, data.value.get_secret_value())
    # One UPDATE with `version + 1`: concurrent rotations get distinct version numbers.
    await session.execute(
        update(Secret)
        .where(Secret.id == secret_id)
        .values(version=Secret.version + 1, ciphertext=ciphertext, updated_at=utcnow())
    )
    await session.refresh(row)
    return row


async def delete_secret(session: AsyncSession, secret_id: str) -> None:
    row = await get_secret(session, secret_id)
    artifacts, workloads = await users_of(session, secret_id)
    if artifacts or workloads:
        users = []
        if artifacts:
            users.append(f"artifacts {artifacts}")
        if workloads:
            users.append(f"the runtime of workloads {workloads}")
        raise ConflictError(
            f"secret '{secret_id}' is referenced by {' and '.join(users)}; remove those "
            "environment variables first"
        )
    await session.delete(row)
    await sharing.forget(session, "secret", secret_id)
    await session.flush()


async def users_of(session: AsyncSession, secret_id: str) -> tuple[list[str], list[str]]:
    """Ids of the artifacts and workloads whose environment variables name the secret."""
    # The text match narrows the rows portably (JSON on SQLite, JSONB on PostgreSQL); the
    # parsed spec then decides, so an id that merely appears in some other field never counts.
    pattern = f"%{secret_id}%"
    artifact_rows = await session.execute(
        select(Artifact.id, Artifact.spec)
        .where(cast(Artifact.spec, Text).like(pattern))
        .order_by(Artifact.id)
    )
    artifacts = [
        artifact_id
        for artifact_id, spec in artifact_rows
        if _names(spec_references(ArtifactSpec.model_validate(spec), ()), secret_id)
    ]
    workload_rows = await session.execute(
        select(Workload.id, Workload.runtime)
        .where(cast(Workload.runtime, Text).like(pattern))
        .order_by(Workload.id)
    )
    workloads = [
        workload_id
        for workload_id, runtime in workload_rows
        if _names(runtime_references(WorkloadRuntime.model_validate(runtime), ()), secret_id)
    ]
    return artifacts[:20], workloads[:20]


def spec_references(spec: ArtifactSpec, loc: Loc) -> list[Reference]:
    found = []
    for g, group in enumerate(spec.container_groups):
        for c, container in enumerate(group.containers):
            c_loc = (*loc, "containerGroups", g, "containers", c)
            found += _env_references(container.environment_vars, c_loc)
    return found


def runtime_references(runtime: WorkloadRuntime, loc: Loc) -> list[Reference]:
    found = []
    for g, group in enumerate(runtime.container_groups):
        for c, override in enumerate(group.containers):
            c_loc = (*loc, "containerGroups", g, "containers", c)
            found += _env_references(override.environment_vars, c_loc)
    return found


def _env_references(variables: Sequence[EnvVar], loc: Loc) -> list[Reference]:
    return [
        ((*loc, "environmentVars", index, "secretId"), variable.secret_id)
        for index, variable in enumerate(variables)
        if isinstance(variable, SecretEnvVar)
    ]


def _names(references: Iterable[Reference], secret_id: str) -> bool:
    return any(found == secret_id for _, found in references)


async def _missing_and_unshared(
    session: AsyncSession, references: list[Reference], principal: Principal
) -> tuple[set[str], set[str]]:
    """Ids of referenced secrets that do not exist, and of those that exist but are not
    shared with the caller (any role will do: referencing a secret is using it)."""
    wanted = {secret_id for _, secret_id in references}
    if not wanted:
        return set(), set()
    existing = set(await session.scalars(select(Secret.id).where(Secret.id.in_(wanted))))
    shared = existing
    if principal.role != "admin":
        rows = await session.scalars(
            select(ResourceRole.resource_id).where(
                ResourceRole.resource_type == "secret",
                ResourceRole.resource_id.in_(existing),
                ResourceRole.username == principal.username,
            )
        )
        shared = set(rows)
    return wanted - existing, existing - shared


async def unusable_secrets(
    session: AsyncSession, references: list[Reference], principal: Principal
) -> list[FieldProblem]:
    """A problem at each reference the caller may not use: one to a secret that does not
    exist is told apart from one that is not shared only by the caller's own knowledge."""
    missing, unshared = await _missing_and_unshared(session, references, principal)
    return [
        FieldProblem(loc, f"secret '{secret_id}' does not exist or is not shared with you")
        for loc, secret_id in references
        if secret_id in missing | unshared
    ]


async def check_references(
    session: AsyncSession, references: list[Reference], principal: Principal
) -> None:
    """References in a request body: a 422 at each one the caller may not use."""
    problems = await unusable_secrets(session, references, principal)
    if problems:
        raise InvalidInputError(problems)


async def require_usable(
    session: AsyncSession, references: list[Reference], principal: Principal, holder: str
) -> None:
    """References stored in `holder` (an artifact the caller runs or clones): a 403 naming
    the secrets that are not shared with the caller, since running it would hand them their
    values. One that no longer exists gives nothing away; the start then fails naming it."""
    _, unshared = await _missing_and_unshared(session, references, principal)
    if unshared:
        raise PermissionDeniedError(
            f"{holder} references secrets {sorted(unshared)} that are not shared with you; "
            "their owners can share them (the consumer role is enough)"
        )


async def resolve(
    session: AsyncSession, secret_ids: Iterable[str], keyring: Keyring
) -> dict[str, str]:
    """Decrypted values of the secrets that exist, by id; ids that do not are left out, so the
    runtime names the variable that lacks its value. Raises `DecryptionError`."""
    wanted = set(secret_ids)
    if not wanted:
        return {}
    rows = await session.execute(select(Secret.id, Secret.ciphertext).where(Secret.id.in_(wanted)))
    return {secret_id: keyring.decrypt(secret_id, stored) for secret_id, stored in rows}


def _duplicate(name: str) -> ConflictError:
    return ConflictError(f"a secret named '{name}' already exists; rotate it, or pick another name")
