"""Per-minute traffic of each deployment into the catalog, for `GET .../stats/`, and of each
workload behind a deployment, for a rollout's analysis (candidate against stable).

A call through a deployment adds to this process's counts of the current minute (`record`:
a few dict and list updates, no I/O). Every `flush_seconds` a background task rewrites this
process's row of the minute for each deployment that had calls since the last write; when a
minute ends, its rows are written a last time and forgotten. Each process writes rows of its
own (`writer`), so processes never contend for a row and the stats route adds them up.

If the catalog does not answer, the counts stay in memory and are written at the next flush
(a minute's count is kept until it has been written once after the minute ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import traffic
from services.traffic import MinuteOf, Per, Traffic, bucket_of

log = logging.getLogger(__name__)

PRUNE_EVERY: Final = 3600.0  # seconds between deletions of rows past the retention


class TrafficLog:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        flush_seconds: float = 5.0,
        retention: timedelta = timedelta(days=90),
    ) -> None:
        self.sessions = sessions
        self.flush_seconds = flush_seconds
        self.retention = retention
        self.writer = f"{os.getpid()}-{os.urandom(8).hex()}"
        self.minute = self._minute_now()
        # This minute's counts, by deployment and by workload.
        self.current: dict[tuple[Per, str], Traffic] = {}
        self.changed: set[tuple[Per, str]] = set()  # counts with calls since the last write
        self.ended: dict[tuple[tuple[Per, str], datetime], Traffic] = {}  # not written yet
        # The counts a deployment's calls went to since the last write, already in `changed`:
        # the usual call is one lookup by deployment id (its workload, its two counts).
        self._counting: dict[str, tuple[str | None, Traffic, Traffic | None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._pruned = 0.0

    def record(
        self, deployment: str, status: int, seconds: float, workload: str | None = None
    ) -> None:
        counting = self._counting.get(deployment)
        if counting is None or counting[0] != workload:
            counting = self._counting[deployment] = (
                workload,
                self._counts(("deployment", deployment)),
                self._counts(("workload", workload)) if workload is not None else None,
            )
        bucket = bucket_of(seconds)
        counting[1].add_call(status, seconds, bucket)
        if counting[2] is not None:
            counting[2].add_call(status, seconds, bucket)

    def record_workload(self, workload: str, status: int, seconds: float) -> None:
        """A call of a workload's own endpoint (counted while it is being replaced)."""
        self._counts(("workload", workload)).add_call(status, seconds, bucket_of(seconds))

    def _counts(self, key: tuple[Per, str]) -> Traffic:
        counts = self.current.get(key)
        if counts is None:
            counts = self.current[key] = Traffic()
        self.changed.add(key)
        return counts

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="traffic-log")

    async def stop(self) -> None:
        """Write what is counted, then stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not await self.flush():
            log.error("deployment traffic of this gateway process lost at shutdown")

    async def _run(self) -> None:
        while True:
            # A flush at each minute's start too: calls are counted in the minute they end in
            # (give or take the event loop's delay), not in the one before.
            to_next_minute = 60 - time.time() % 60 + 0.001
            await asyncio.sleep(min(self.flush_seconds, to_next_minute))
            await self.flush()
            if time.monotonic() - self._pruned > PRUNE_EVERY:
                await self._prune()

    def _minute_now(self) -> datetime:
        return datetime.now(UTC).replace(second=0, microsecond=0)

    def _roll(self) -> None:
        """A new minute: what was counted in the last one is written once more, then dropped."""
        now = self._minute_now()
        if now == self.minute:
            return
        for key in self.changed:
            self.ended[(key, self.minute)] = self.current[key]
        self.current, self.changed, self.minute = {}, set(), now
        self._counting = {}

    async def flush(self) -> bool:
        """Write the counts changed since the last write; False if the catalog refused."""
        self._roll()  # only here: the minute cannot change while a write is under way
        pending, self.changed = self.changed, set()
        self._counting = {}  # calls from now on mark their counts changed again
        ended = list(self.ended.items())
        # Copies: calls counted while the write is under way go into the next one.
        rows = [(k, MinuteOf(k[1], self.minute, _copy(self.current[k]))) for k in pending]
        rows += [(k, MinuteOf(k[1], minute, counts)) for (k, minute), counts in ended]
        if not rows:
            return True
        written = False
        try:
            async with self.sessions() as session, session.begin():
                for per in ("deployment", "workload"):
                    mine = [row for (kind, _), row in rows if kind == per]
                    await traffic.save(session, self.writer, mine, per)
            written = True
        except Exception:
            log.exception("deployment traffic not written; retrying at the next flush")
        finally:
            if written:
                for key, _ in ended:
                    self.ended.pop(key, None)
            else:  # failed or cancelled: written at the next flush
                self.changed |= pending
        return written

    async def _prune(self) -> None:
        self._pruned = time.monotonic()
        try:
            async with self.sessions() as session, session.begin():
                await traffic.prune(session, datetime.now(UTC) - self.retention)
        except Exception:
            log.exception("old deployment traffic not deleted; trying again later")


def _copy(counts: Traffic) -> Traffic:
    copy = Traffic()
    copy.add(counts)
    return copy
