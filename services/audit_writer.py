"""`AuditWriter`: one per API process. Management actions are written before they are
answered (`append_now`); records that can wait are queued and written in batches (`enqueue`).
(Invoke calls are recorded by the gateway process: api/gateway/invocation_audit.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.audit import AuditEntry
from services import audit

log = logging.getLogger(__name__)


class AuditWriter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        flush_interval: float = 0.5,
        batch_size: int = 200,
        max_pending: int = 20_000,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._sessions = sessions
        self._interval = flush_interval
        self._batch_size = batch_size
        # Bounded: if the database is slow or down, memory must not grow without limit.
        self._queue: asyncio.Queue[AuditEntry] = asyncio.Queue(maxsize=max_pending)
        self._retry: list[AuditEntry] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._registry = registry
        self._collector = _WriterCollector(self)
        self.dropped = 0
        self.failed_writes = 0

    @property
    def pending(self) -> int:
        return self._queue.qsize() + len(self._retry)

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="audit-writer")
        if self._registry is not None:
            self._registry.register(self._collector)

    async def stop(self) -> None:
        """Flush what is queued, then stop. Entries that still cannot be written are counted
        as dropped and logged."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        await self._task
        self._task = None
        if self._registry is not None:
            self._registry.unregister(self._collector)

    def enqueue(self, entry: AuditEntry) -> bool:
        """Queue `entry` for the next batch without waiting; False if it had to be dropped."""
        if self._task is None or self._stopping:
            self._drop(1, "the audit writer is not running")
            return False
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self._drop(1, "the audit queue is full")
            return False
        if self._queue.qsize() >= self._batch_size:
            self._wake.set()
        return True

    async def append_now(self, entry: AuditEntry) -> None:
        """Write `entry` and commit before returning. Raises if the database fails."""
        try:
            async with self._sessions() as session, session.begin():
                await audit.append(session, [entry])
        except Exception:
            self.failed_writes += 1
            raise

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            stopping = self._stopping
            written = await self._flush()
            if stopping:
                if not written:
                    self._drop(self.pending, "the final flush failed")
                    self._retry.clear()
                    while not self._queue.empty():
                        self._queue.get_nowait()
                return

    async def _flush(self) -> bool:
        """Write everything queued, a batch per transaction; False (batch kept) on failure."""
        while self._retry or not self._queue.empty():
            if not self._retry:
                count = min(self._batch_size, self._queue.qsize())
                self._retry = [self._queue.get_nowait() for _ in range(count)]
            try:
                async with self._sessions() as session, session.begin():
                    await audit.append(session, self._retry)
            except Exception:
                self.failed_writes += 1
                log.exception(
                    "audit batch could not be written; retrying at the next flush",
                    extra={"batch": len(self._retry), "pending": self.pending},
                )
                return False
            self._retry = []
        return True

    def _drop(self, count: int, why: str) -> None:
        if count <= 0:
            return
        self.dropped += count
        # Every drop would flood the log exactly when things go wrong; log the first and then
        # every thousandth. The total is always on /metrics.
        if self.dropped == count or self.dropped // 1000 != (self.dropped - count) // 1000:
            log.error(
                "audit entries dropped: %s",
                why,
                extra={"dropped_now": count, "dropped_total": self.dropped},
            )


class _WriterCollector(Collector):
    def __init__(self, writer: AuditWriter) -> None:
        self._writer = writer

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "wapi_audit_dropped_entries",
            "Queued audit entries lost because the queue overflowed or writing failed.",
            value=self._writer.dropped,
        )
        yield CounterMetricFamily(
            "wapi_audit_failed_writes",
            "Audit writes that failed (batches are retried; see the log).",
            value=self._writer.failed_writes,
        )
        yield GaugeMetricFamily(
            "wapi_audit_pending_entries",
            "Audit entries queued and not yet written.",
            value=self._writer.pending,
        )
