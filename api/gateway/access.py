"""Who may invoke what, and where the call goes: the gateway's view of the control plane.

`Access.authorize` (who calls) and `Access.route` (where to) are the hot path: dict lookups
only (the route snapshot, the credential and permission caches), no coroutine. When one of them
has no fresh answer it raises `Miss`; the request then leaves the fast path, awaits
`Miss.load` (one catalog lookup, shared by every request waiting on the same key) and asks
again (`Access.settled`).

The rule for API keys is `may_invoke`, which applies `services/invoke_access.py` (the same
ownership rules as the management API). Invoke tokens are bound to one deployment.
Credentials are checked before anything else, so an unknown caller learns nothing about which
deployments exist.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.gateway.credentials import Credentials
from api.gateway.directory import ReplicaDirectory, Split
from api.gateway.split import HeaderLines, Spreader, session_key, sticky_side
from api.gateway.ttl_cache import MISSING, Missing, TtlCache
from models.audit import ActorKind
from services import deployment_access, invoke_access
from services.api_keys import Principal
from services.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)

Kind = Literal["workload", "deployment"]
K = TypeVar("K")
V = TypeVar("V")
_TOKEN_PREFIX: Final = deployment_access.TOKEN_PREFIX.encode()


class Caller(NamedTuple):
    actor: str  # a username, or `token:<id>`
    actor_kind: ActorKind


ANONYMOUS: Final = Caller("anonymous", "anonymous")


@dataclass(slots=True)
class Decision:
    """Where a call goes, for whom (`Access.route`)."""

    kind: Kind
    target: str  # the id in the path
    workload: str
    addresses: tuple[str, ...]
    actor: str
    actor_kind: ActorKind
    max_body_bytes: int

    @property
    def deployment(self) -> str | None:
        return self.target if self.kind == "deployment" else None

    def replica(self, turn: int) -> str:
        """The replica for the `turn`-th attempt: round robin over the ready ones."""
        return self.addresses[turn % len(self.addresses)]

    def what(self) -> str:
        return f"{self.kind} '{self.target}'"


class CallerRefused(PermissionDeniedError):
    """A known caller who may not call this target (403): the audit record names them."""

    def __init__(self, message: str, caller: Caller) -> None:
        super().__init__(message)
        self.caller = caller


class ColdStart(Exception):
    """The workload is scaled to zero (or starting from it): the call waits for a replica."""

    def __init__(self, workload: str) -> None:
        super().__init__("cold start")
        self.workload = workload


class Miss(Exception):
    """A lookup the caches cannot answer now: await `load()`, then authorize again."""

    def __init__(self, load: Callable[[], Awaitable[object]]) -> None:
        super().__init__("miss")
        self.load = load


async def may_invoke(
    session: AsyncSession, principal: Principal, kind: Kind, target_id: str
) -> bool:
    """Whether the holder of an API key may invoke the workload or deployment: the rule of
    `services/invoke_access.py` (any role on it, or owner/user on a deployment in front of a
    workload; admins always)."""
    if principal.role == "admin":
        return True
    role = await invoke_access.invoke_role(session, kind, target_id, principal.username)
    try:
        invoke_access.check_invoke(principal, kind, role)
    except PermissionDeniedError:
        return False
    return True


class Access:
    def __init__(
        self,
        directory: ReplicaDirectory,
        credentials: Credentials,
        sessions: async_sessionmaker[AsyncSession],
        *,
        default_max_body_bytes: int,
        ttl: float = 0.5,
    ) -> None:
        self.directory = directory
        self.credentials = credentials
        self.sessions = sessions
        self.default_max_body_bytes = default_max_body_bytes
        self._permissions: TtlCache[tuple[Principal, Kind, str], bool] = TtlCache(
            self._load_permission, ttl=ttl
        )
        self._digests: dict[bytes, str] = {}
        self.spreader = Spreader()

    # ---- the hot path --------------------------------------------------------------------

    def authorize(self, kind: Kind, target_id: str, authorization: bytes | None) -> Caller:
        """Who calls, if they may call this target. Raises `Miss`, or a `DomainError` (401,
        403) that is the answer."""
        secret = _bearer(authorization)
        if not secret:
            raise AuthenticationError(
                "send an invoke token or an API key: 'Authorization: Bearer ...'"
            )
        if kind == "deployment" and secret.startswith(_TOKEN_PREFIX):
            credentials = self.credentials
            digest = self._digest(secret)
            owner = credentials.tokens.peek(digest)
            if isinstance(owner, Missing):
                owner = _peek(credentials.peek_token, credentials.tokens.get, digest)
            if owner is None:
                raise AuthenticationError("the invoke token is not valid")
            caller = Caller(f"token:{owner[1]}", "invoke_token")
            if owner[0] != target_id:
                raise CallerRefused("this invoke token belongs to another deployment", caller)
            return caller
        principal = _peek(
            self.credentials.peek_key, self.credentials.keys.get, self._digest(secret)
        )
        if principal is None:
            raise AuthenticationError("the API key is not valid")
        key = (principal, kind, target_id)
        if not _peek(self._permissions.peek, self._permissions.get, key):
            raise CallerRefused(_refusal(kind), Caller(principal.username, "api_key"))
        return Caller(principal.username, "api_key")

    def route(
        self,
        kind: Kind,
        target_id: str,
        caller: Caller,
        headers: HeaderLines = (),
    ) -> Decision:
        """Where the call goes (`headers`: for the session key of a rollout or a replacement).
        Raises `Miss`, `ColdStart` (wait for a replica), or a `DomainError` (404, 503) that is
        the answer."""
        directory = self.directory
        if kind == "workload":
            if not _peek(directory.peek_exists, directory.exists, target_id):
                raise NotFoundError("workload", target_id)
            workload, limit = target_id, None
            replacing = directory.routes.replacing.get(target_id)
            if replacing is not None:
                workload = self._side(target_id, target_id, replacing, headers)
        else:
            # The snapshot first: one dict lookup is the whole cost of the usual call.
            target = directory.routes.deployments.get(target_id) or _peek(
                directory.peek_target, directory.deployment_target, target_id
            )
            if target is None:
                raise NotFoundError("deployment", target_id)
            workload, limit = target.workload, target.max_body_bytes
            if target.split is not None:
                workload = self._side(target_id, target.workload, target.split, headers)
        addresses = directory.routes.ready.get(workload) or _peek(
            directory.peek_ready, directory.addresses, workload
        )
        if not addresses:
            if directory.is_cold(workload):
                raise ColdStart(workload)
            raise UnavailableError(
                f"{kind} '{target_id}' has no ready replica; try again shortly",
                retry_after_seconds=2,
            )
        return Decision(
            kind,
            target_id,
            workload,
            addresses,
            caller.actor,
            caller.actor_kind,
            self.default_max_body_bytes if limit is None else limit,
        )

    async def settled(self, lookup: Callable[[], V]) -> V:
        """`lookup()`, loading what the caches miss (each a catalog lookup) in between."""
        for _ in range(8):
            try:
                return lookup()
            except Miss as miss:
                await miss.load()
        # Every lookup was answered and then dropped by a newer snapshot, eight times over.
        raise UnavailableError(
            "the route table is changing too fast; try again", retry_after_seconds=1
        )

    def _side(
        self,
        route_id: str,
        stable: str,
        split: Split,
        headers: HeaderLines,
    ) -> str:
        """Stable or candidate, by weight; stable while the candidate has no ready replica
        (a call is never sent where nothing answers)."""
        key = session_key(headers)
        if key is not None:
            candidate = sticky_side(split.rollout, split.weight, key)
        else:
            candidate = self.spreader.candidate(route_id, split.weight)
        if candidate and self.directory.routes.ready.get(split.candidate):
            return split.candidate
        return stable

    def _digest(self, secret: bytes) -> str:
        # sha256 costs about a microsecond; remembered for the few secrets that call all the
        # time, in a bounded memo that a flood of random secrets cannot grow.
        digest = self._digests.get(secret)
        if digest is None:
            digest = hashlib.sha256(secret).hexdigest()
            if len(self._digests) >= 4096:
                self._digests.clear()
            self._digests[secret] = digest
        return digest

    async def _load_permission(self, key: tuple[Principal, Kind, str]) -> bool:
        principal, kind, target_id = key
        async with self.sessions() as session:
            return await may_invoke(session, principal, kind, target_id)


def _peek(peek: Callable[[K], V | Missing], load: Callable[[K], Awaitable[V]], key: K) -> V:
    found = peek(key)
    if found is MISSING:
        raise Miss(lambda: load(key))
    return found  # type: ignore[return-value]  # not MISSING, so a V


def _refusal(kind: Kind) -> str:
    return f"you have no role on this {kind}; an owner can share it with you"


def _bearer(authorization: bytes | None) -> bytes:
    if not authorization:
        return b""
    scheme, _, token = authorization.partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else b""
