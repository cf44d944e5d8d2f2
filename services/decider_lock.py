"""Which API process runs the autoscaler: the one holding the catalog's decider lock.

On PostgreSQL, a session-level advisory lock (`pg_try_advisory_lock`) held on a connection of
its own: the server releases it the moment that connection ends, however the process ends, so
another API replica takes over at its next try, with no lease to expire and no row written
every few seconds. The holder checks its connection now and then (`still_held`) and steps down
when it is gone (the server may have dropped it). On SQLite every process that shares the
catalog shares the machine and the file's directory, so an exclusive `flock` on a file beside
the database does the same job (the kernel releases it when its holder exits).

Why not a lease row: it needs a renewal write every few seconds from the holder, a takeover
only after it expires, and clocks that agree; the advisory lock needs none of that. What it
needs instead: a direct session to PostgreSQL (a pooler in transaction mode, such as
PgBouncer's, would share the session between clients and lose the lock).
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

LOCK_KEY = 7226363  # 7226361: migrations (catalog/database.py), 7226362: audit (services/audit.py)


class DeciderLock(Protocol):
    async def try_acquire(self) -> bool: ...

    async def still_held(self) -> bool: ...

    async def release(self) -> None: ...


class FileLock:
    """An exclusive flock on `path`, for processes of one machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = None

    async def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    async def still_held(self) -> bool:
        return self._handle is not None

    async def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # releases the lock
            self._handle = None


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock on a connection kept for it."""

    def __init__(self, engine: AsyncEngine, key: int = LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self._connection: AsyncConnection | None = None

    async def try_acquire(self) -> bool:
        connection = await self.engine.connect()
        try:
            # Autocommit: the lock belongs to the session, and no transaction stays open.
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            got = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            )
        except BaseException:
            await connection.close()
            raise
        if not got:
            await connection.close()
            return False
        self._connection = connection
        return True

    async def still_held(self) -> bool:
        if self._connection is None:
            return False
        try:
            await self._connection.execute(text("SELECT 1"))
        except Exception:  # the connection is gone, and the lock with it
            await self.release()
            return False
        return True

    async def release(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            with contextlib.suppress(Exception):
                await connection.close()


def for_catalog(engine: AsyncEngine, state_dir: Path) -> DeciderLock:
    """The decider lock for the catalog `engine` opens."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return AdvisoryLock(engine)
    if url.database and url.database != ":memory:":
        return FileLock(Path(f"{url.database}.autoscaler.lock"))
    return FileLock(state_dir / "autoscaler.lock")
