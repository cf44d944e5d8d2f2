"""API keys and invoke tokens by hash, through short-lived caches (`TtlCache`).

The management API awaits `authenticate`; the gateway's hot path `peek`s and awaits a load
only on a miss (see `access.py`).
"""

from __future__ import annotations

import hmac

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.gateway.ttl_cache import Missing, TtlCache
from catalog.tables import InvokeToken
from services import api_keys
from services.api_keys import Principal
from services.errors import AuthenticationError

# (deployment id, token id) of an active invoke token
TokenOwner = tuple[str, str]


class Credentials:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl: float = 0.5) -> None:
        self.sessions = sessions
        self.keys: TtlCache[str, Principal | None] = TtlCache(self._load_key, ttl=ttl)
        self.tokens: TtlCache[str, TokenOwner | None] = TtlCache(self._load_token, ttl=ttl)

    async def authenticate(self, key: str) -> Principal:
        principal = await self.keys.get(api_keys.hash_key(key))
        if principal is None:
            raise AuthenticationError("the API key is not valid")
        return principal

    async def may_see_resource_ids(
        self, authorization: bytes | None, *, token: str | None, public: bool
    ) -> bool:
        """Whether a `/metrics` scrape sees series naming workloads and deployments: with the
        metrics token or an admin API key, or when configured public (a trusted network)."""
        if public:
            return True
        scheme, _, secret = (authorization or b"").partition(b" ")
        secret = secret.strip()
        if scheme.lower() != b"bearer" or not secret:
            return False
        if token and hmac.compare_digest(secret, token.encode()):
            return True
        if not secret.startswith(api_keys.KEY_PREFIX.encode()):
            return False
        try:
            principal = await self.authenticate(secret.decode("latin-1"))
        except Exception:  # a bad key, or the catalog away: the anonymous view
            return False
        return principal.role == "admin"

    def peek_key(self, digest: str) -> Principal | Missing | None:
        return self.keys.peek(digest)

    def peek_token(self, digest: str) -> TokenOwner | Missing | None:
        return self.tokens.peek(digest)

    def forget_key(self, key_id: str) -> None:
        self.keys.forget(lambda _, principal: principal is not None and principal.key_id == key_id)

    async def _load_key(self, digest: str) -> Principal | None:
        async with self.sessions() as session:
            try:
                return await api_keys.authenticate_hash(session, digest)
            except AuthenticationError:
                return None

    async def _load_token(self, digest: str) -> TokenOwner | None:
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(InvokeToken.deployment_id, InvokeToken.id).where(
                        InvokeToken.token_hash == digest, InvokeToken.revoked_at.is_(None)
                    )
                )
            ).first()
        return (row[0], row[1]) if row else None
