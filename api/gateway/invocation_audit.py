"""Invoke calls into the hash-chained audit log, in batches, off the request path.

A call costs the request one tuple appended to a bounded queue. Twice a second a background
task writes what is queued: calls are grouped by who called what from where with which status
and method (`Group`), and each group becomes one chain record (`<kind>.invoke`) that lists
every call it holds (at most `CALLS_PER_RECORD`): its time offset, request id, path (never the
query, which may carry credentials) and latency. So every call is in the log, in a record
whose hash covers it, at a few microseconds per call; a record per call (an ORM row and a hash
each) cost about 200 us, more than forwarding the call itself (see docs/audit.md).

If the catalog cannot keep up or is away, the queue holds up to `max_pending` calls; beyond
that new calls are dropped and counted (`wapi_gateway_audit_total{outcome="dropped"}`); a
request is never blocked. A failed write is retried at the next flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.gateway.metrics import GatewayMetrics
from models.audit import ActorKind, AuditEntry, clean_text
from services import audit

log = logging.getLogger(__name__)

CALLS_PER_RECORD: Final = 200
COLUMNS: Final = ["offsetUs", "requestId", "path", "latencyUs"]
MAX_PATH: Final = 500
SLICE: Final = 500  # calls grouped between two yields to the event loop
# Records per append (a transaction): hashing and inserting them is one step of the event
# loop, some 30 us a record, so a batch never holds the loop for long.
RECORDS_PER_APPEND: Final = 8

# kind, target id, actor, actor kind, status, method, upstream target, request id, source ip,
# wall-clock time, seconds taken
Call = tuple[str, str, str, ActorKind, int, bytes, bytes, bytes, str, float, float]
# kind, target id, actor, actor kind, status, source ip, method
Group = tuple[str, str, str, ActorKind, int, str, bytes]


class InvocationAudit:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        metrics: GatewayMetrics,
        *,
        interval: float = 0.5,
        max_pending: int = 100_000,
    ) -> None:
        self.sessions = sessions
        self.metrics = metrics
        self.interval = interval
        self.max_pending = max_pending
        self._queue: deque[Call] = deque()
        self._unwritten: list[audit.Prepared] = []  # a batch not written yet, tried first
        self._task: asyncio.Task[None] | None = None

    def record(self, call: Call) -> None:
        if len(self._queue) >= self.max_pending:
            self.metrics.count(self.metrics.audit, "dropped")
            return
        self._queue.append(call)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="invocation-audit")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not await self.flush():
            self.metrics.count(self.metrics.audit, "dropped", self.pending + self._held())
            log.error("audit records of invoke calls lost at shutdown: the catalog did not answer")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> bool:
        """Write everything queued so far; False if the catalog refused (kept for later)."""
        if not self._unwritten:
            self._unwritten = await self._entries()
        while self._unwritten:
            batch = self._unwritten[:RECORDS_PER_APPEND]
            try:
                # A few records per transaction, prepared beforehand: each holds the catalog's
                # write lock (on SQLite, every other writer's too) and the event loop for as
                # short as possible.
                async with self.sessions() as session, session.begin():
                    await audit.append_prepared(session, batch)
            except Exception:
                self.metrics.count(self.metrics.audit, "failed_writes")
                log.exception("invoke audit batch not written; retrying at the next flush")
                return False
            self.metrics.count(self.metrics.audit, "recorded", _calls(batch))
            del self._unwritten[: len(batch)]
        return True

    def _held(self) -> int:
        return _calls(self._unwritten)

    async def _entries(self) -> list[audit.Prepared]:
        """The queued calls as chain records, built (and their JSON encoded) a slice at a
        time, so the event loop keeps serving requests meanwhile."""
        groups: dict[Group, list[Call]] = {}
        queue = self._queue
        while queue:
            for _ in range(min(SLICE, len(queue))):
                call = queue.popleft()
                key = (call[0], call[1], call[2], call[3], call[4], call[8], call[5])
                found = groups.get(key)
                if found is None:
                    groups[key] = [call]
                else:
                    found.append(call)
            await asyncio.sleep(0)
        entries = []
        for key, calls in groups.items():
            while calls:
                entries.append(audit.prepare(_entry(key, calls[:CALLS_PER_RECORD])))
                # Freed a record's worth at a time: thousands of calls freed at once (when
                # this coroutine returned) held the loop for milliseconds.
                del calls[:CALLS_PER_RECORD]
                await asyncio.sleep(0)
        return entries


def _calls(records: list[audit.Prepared]) -> int:
    return sum(prepared.entry.summary["count"] for prepared in records)


def _entry(group: Group, calls: list[Call]) -> AuditEntry:
    kind, target_id, actor, actor_kind, status, ip, method = group
    first = calls[0][9]
    # Whole microseconds: integers cost a fraction of floats to build and to encode.
    # Tuples, not lists: of plain values only, the collector stops tracking them at its first
    # look, so thousands of rows waiting for their write cost no collector pass.
    rows: list[tuple[int, str, str, int]] = []
    slowest = 0
    paths: dict[bytes, str] = {}  # the calls of a record mostly share a few paths
    for call in calls:
        latency = int(call[10] * 1e6)
        if latency > slowest:
            slowest = latency
        path = paths.get(call[6])
        if path is None:
            path = paths[call[6]] = _path(call[6])
        rows.append((int((call[9] - first) * 1e6), call[7].decode("latin-1"), path, latency))
    summary: dict[str, Any] = {
        "count": len(calls),
        "method": method.decode("latin-1"),
        "columns": COLUMNS,
        "calls": rows,
    }
    # Every value is already what `AuditEntry`'s validators would make of it (clean, clipped,
    # plain JSON), so validation, which would walk every call, is skipped.
    return AuditEntry.model_construct(
        at=datetime.fromtimestamp(first, UTC),
        actor=clean_text(actor, 100),
        actor_kind=actor_kind,
        action=f"{kind}.invoke",
        resource_type=kind,
        resource_id=clean_text(target_id, 64),
        request_id=calls[0][7].decode("latin-1")[:64],
        source_ip=ip[:64] or None,
        status_code=status,
        latency_ms=round(slowest / 1000, 3),
        summary=summary,
    )


def _path(target: bytes) -> str:
    path = target.partition(b"?")[0][:MAX_PATH].decode("latin-1")
    return path.replace("\x00", "\ufffd")
