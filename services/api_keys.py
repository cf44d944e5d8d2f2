"""API keys: generated here, shown once, stored as SHA-256 hashes, revocable."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import ApiKey, utcnow
from models.api_keys import ApiKeyCreate, Role
from services.errors import AuthenticationError, ConflictError, NotFoundError

KEY_PREFIX = "wapi_"
ROLE_RANK: dict[Role, int] = {"viewer": 0, "editor": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    """The caller of a request, as established by its API key."""

    key_id: str
    username: str
    role: Role

    def has_role(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def hash_key(key: str) -> str:
    # Keys are 256-bit random strings, so a fast hash is enough; a password KDF would only
    # slow every request down without adding protection.
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_key(
    session: AsyncSession, data: ApiKeyCreate, creator: str, *, key: str | None = None
) -> tuple[ApiKey, str]:
    key = key or generate_key()
    row = ApiKey(
        name=data.name,
        username=data.username,
        role=data.role,
        key_hash=hash_key(key),
        prefix=key[: len(KEY_PREFIX) + 6],
        created_by=creator,
    )
    session.add(row)
    await session.flush()
    return row, key


async def authenticate(session: AsyncSession, key: str) -> Principal:
    return await authenticate_hash(session, hash_key(key))


async def authenticate_hash(session: AsyncSession, digest: str) -> Principal:
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if row is None or row.revoked_at is not None:
        raise AuthenticationError("the API key is not valid")
    return Principal(key_id=row.id, username=row.username, role=row.role)


async def get_key(session: AsyncSession, key_id: str) -> ApiKey:
    row = await session.get(ApiKey, key_id)
    if row is None:
        raise NotFoundError("API key", key_id)
    return row


async def list_keys(session: AsyncSession, offset: int, limit: int) -> tuple[list[ApiKey], int]:
    total = await session.scalar(select(func.count()).select_from(ApiKey)) or 0
    rows = await session.scalars(
        select(ApiKey).order_by(ApiKey.created_at, ApiKey.id).offset(offset).limit(limit)
    )
    return list(rows), total


async def revoke_key(session: AsyncSession, key_id: str, caller: Principal) -> ApiKey:
    row = await get_key(session, key_id)
    if row.revoked_at is not None:
        raise ConflictError(f"API key '{key_id}' is already revoked")
    if row.id == caller.key_id:
        raise ConflictError("an admin cannot revoke the key it is using; use another admin key")
    row.revoked_at = utcnow()
    await session.flush()
    return row


async def ensure_admin_key(
    session: AsyncSession, *, preset: str | None, key_file: Path
) -> str | None:
    """Create the first admin key when none is active. Returns where to find it, if created now.

    The preset key (WAPI_BOOTSTRAP_ADMIN_KEY) is used as is; otherwise a new key is written to
    `key_file`, readable by its owner only.
    """
    active = await session.scalar(
        select(func.count()).where(ApiKey.role == "admin", ApiKey.revoked_at.is_(None))
    )
    if active:
        return None
    bootstrap = ApiKeyCreate(name="bootstrap admin", username="admin", role="admin")
    if preset:
        await create_key(session, bootstrap, "system", key=preset)
        return "WAPI_BOOTSTRAP_ADMIN_KEY"
    _, key = await create_key(session, bootstrap, "system")
    await asyncio.to_thread(_write_private, key_file, key + "\n")
    return str(key_file)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)
