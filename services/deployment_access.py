"""Invoke tokens: each invokes one deployment and can do nothing else (they are not API keys).

Roles on deployments, as on every resource, live in `services/access.py`.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.tables import InvokeToken, utcnow
from services.deployments import add_event
from services.errors import ConflictError, NotFoundError

TOKEN_PREFIX = "wdt_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    session: AsyncSession, deployment_id: str, name: str, creator: str
) -> tuple[InvokeToken, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = InvokeToken(
        deployment_id=deployment_id,
        name=name,
        token_hash=hash_token(token),
        prefix=token[: len(TOKEN_PREFIX) + 6],
        created_by=creator,
    )
    session.add(row)
    await session.flush()
    await add_event(
        session, deployment_id, "token_created", f"token '{name}' created by {creator}", creator
    )
    return row, token


async def list_tokens(session: AsyncSession, deployment_id: str) -> list[InvokeToken]:
    rows = await session.scalars(
        select(InvokeToken)
        .where(InvokeToken.deployment_id == deployment_id)
        .order_by(InvokeToken.created_at)
    )
    return list(rows)


async def revoke_token(
    session: AsyncSession, deployment_id: str, token_id: str, actor: str
) -> InvokeToken:
    row = await session.get(InvokeToken, token_id)
    if row is None or row.deployment_id != deployment_id:
        raise NotFoundError("invoke token", token_id)
    if row.revoked_at is not None:
        raise ConflictError(f"invoke token '{token_id}' is already revoked")
    row.revoked_at = utcnow()
    await add_event(
        session, deployment_id, "token_revoked", f"token '{row.name}' revoked by {actor}", actor
    )
    return row
