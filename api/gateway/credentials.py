"""Credential and role lookups for every request, through short-lived caches (`TtlCache`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.gateway.ttl_cache import TtlCache
from catalog.tables import InvokeToken
from models.sharing import ShareRole
from services import api_keys, invoke_access
from services.api_keys import Principal
from services.errors import AuthenticationError
from services.invoke_access import InvokeKind


class Credentials:
    """API keys (by hash), invoke tokens (by hash) and invoke roles (by kind, id, user)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl: float = 0.5) -> None:
        self.sessions = sessions
        self._keys: TtlCache[str, Principal | None] = TtlCache(self._load_key, ttl=ttl)
        self._tokens: TtlCache[str, tuple[str, str] | None] = TtlCache(self._load_token, ttl=ttl)
        self._roles: TtlCache[tuple[InvokeKind, str, str], ShareRole | None] = TtlCache(
            self._load_role, ttl=ttl
        )

    async def authenticate(self, key: str) -> Principal:
        principal = await self._keys.get(api_keys.hash_key(key))
        if principal is None:
            raise AuthenticationError("the API key is not valid")
        return principal

    async def token(self, token_hash: str) -> tuple[str, str] | None:
        """(deployment id, token id) of an active invoke token."""
        return await self._tokens.get(token_hash)

    async def invoke_role(
        self, kind: InvokeKind, resource_id: str, username: str
    ) -> ShareRole | None:
        """`invoke_access.invoke_role`, cached."""
        return await self._roles.get((kind, resource_id, username))

    def forget_key(self, key_id: str) -> None:
        self._keys.forget(lambda _, principal: principal is not None and principal.key_id == key_id)

    async def _load_key(self, digest: str) -> Principal | None:
        async with self.sessions() as session:
            try:
                return await api_keys.authenticate_hash(session, digest)
            except AuthenticationError:
                return None

    async def _load_token(self, digest: str) -> tuple[str, str] | None:
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(InvokeToken.deployment_id, InvokeToken.id).where(
                        InvokeToken.token_hash == digest, InvokeToken.revoked_at.is_(None)
                    )
                )
            ).first()
        return (row[0], row[1]) if row else None

    async def _load_role(self, key: tuple[InvokeKind, str, str]) -> ShareRole | None:
        kind, resource_id, username = key
        async with self.sessions() as session:
            return await invoke_access.invoke_role(session, kind, resource_id, username)
