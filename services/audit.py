"""The audit log: an append-only chain of records, each hashing the one before it.

`hash = sha256(prev_hash + "\\n" + canonical JSON of seq and the record's fields)`, starting
from `GENESIS`. Editing a record breaks its own hash; deleting one leaves a gap in `seq` and a
`prev_hash` that points at nothing; inserting one breaks the link of the record after it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Select, Table, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.database import EncodedJSON
from catalog.tables import AuditEvent
from models.audit import AuditEntry, AuditVerification
from services.listing import PageRequest, fetch_page

GENESIS = "0" * 64
# Serialises appends across processes on PostgreSQL (the migration lock is 7226361).
APPEND_LOCK = 7226362
VERIFY_BATCH = 1000
HASHED_FIELDS = (
    "at",
    "actor",
    "actor_kind",
    "action",
    "resource_type",
    "resource_id",
    "request_id",
    "source_ip",
    "status_code",
    "latency_ms",
    "summary",
)


def format_at(value: datetime) -> str:
    """The one spelling of a time in the hash; both backends keep microseconds."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat(timespec="microseconds")


def canonical(row: AuditEvent) -> bytes:
    record: dict[str, Any] = {name: getattr(row, name) for name in HASHED_FIELDS}
    record["at"] = format_at(row.at)
    record["seq"] = row.seq
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def record_hash(row: AuditEvent) -> str:
    """The hash `row` must carry, given its `prev_hash` and fields as stored."""
    return hashlib.sha256(row.prev_hash.encode() + b"\n" + canonical(row)).hexdigest()


@dataclass(frozen=True)
class Prepared:
    """An entry with its canonical JSON made ahead, all but `seq`, which only the append knows:
    what `canonical` makes of the row is `{before,"seq":N,after}`, as `seq` sorts between
    `resource_type` and `source_ip`. Large entries (the gateway's, listing hundreds of calls)
    are prepared before the transaction, so the write lock is held for as short as possible."""

    entry: AuditEntry
    before: bytes
    after: bytes
    summary: bytes  # the summary's canonical JSON, the end of `after`: stored as it is

    def canonical(self, seq: int) -> bytes:
        return b'%s,"seq":%d,%s' % (self.before, seq, self.after)


def prepare(entry: AuditEntry) -> Prepared:
    record: dict[str, Any] = {name: getattr(entry, name) for name in HASHED_FIELDS}
    record["at"] = format_at(entry.at)
    summary = _canonical_json(record.pop("summary"))
    before = {key: value for key, value in record.items() if key < "seq"}
    after = {key: value for key, value in record.items() if key > "seq"}
    # "summary" sorts after every other field: the last key of `after`, encoded once.
    after_json = b'%s,"summary":%s}' % (_canonical_json(after)[1:-1], summary)
    return Prepared(entry, _canonical_json(before)[:-1], after_json, summary)


def _canonical_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


async def append(
    session: AsyncSession, entries: Sequence[AuditEntry | Prepared]
) -> list[AuditEvent]:
    """Chain `entries` onto the log in the session's transaction; they become visible, with
    consecutive seqs, when the caller commits. Concurrent appenders queue on a lock."""
    if not entries:
        return []
    ready = [entry if isinstance(entry, Prepared) else prepare(entry) for entry in entries]
    seq, prev_hash = await _tail(session)
    rows: list[AuditEvent] = []
    for prepared in ready:
        seq += 1
        digest = hashlib.sha256(prev_hash.encode() + b"\n" + prepared.canonical(seq)).hexdigest()
        # The entry's own values (frozen, already clean): no deep copy of large summaries.
        row = AuditEvent(seq=seq, prev_hash=prev_hash, hash=digest, **dict(prepared.entry))
        rows.append(row)
        prev_hash = digest
    session.add_all(rows)
    await session.flush()
    return rows


async def append_prepared(session: AsyncSession, entries: Sequence[Prepared]) -> None:
    """`append` for large batches (the gateway's): one multi-row INSERT and no ORM objects,
    each summary stored as the JSON its hash was computed from, so it is encoded once."""
    if not entries:
        return
    seq, prev_hash = await _tail(session)
    rows: list[dict[str, Any]] = []
    for prepared in entries:
        seq += 1
        digest = hashlib.sha256(prev_hash.encode() + b"\n" + prepared.canonical(seq)).hexdigest()
        row = dict(prepared.entry)
        row.update(seq=seq, prev_hash=prev_hash, hash=digest)
        row["summary"] = EncodedJSON(prepared.summary.decode())
        rows.append(row)
        prev_hash = digest
    # The table, not the ORM entity: a plain executemany, no ORM bulk-insert processing.
    await session.execute(insert(cast(Table, AuditEvent.__table__)), rows)


async def _tail(session: AsyncSession) -> tuple[int, str]:
    """The last seq and hash of the chain, with the right to append after them."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        # Held until commit, so no other appender reads the tail before ours is written.
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK})
    # On SQLite the transaction began with BEGIN IMMEDIATE: we already hold the write lock.
    tail = (
        await session.execute(
            select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
        )
    ).first()
    return (tail.seq, tail.hash) if tail else (0, GENESIS)


def _problem(row: AuditEvent, expected_seq: int, expected_prev: str) -> tuple[int, str] | None:
    """Where and why `row` does not continue the chain, or None when it does."""
    if row.seq != expected_seq:
        missing = (
            f"{expected_seq}" if row.seq == expected_seq + 1 else f"{expected_seq}..{row.seq - 1}"
        )
        return expected_seq, f"record(s) {missing} are missing: deleted, or seqs were changed"
    if row.prev_hash != expected_prev:
        return row.seq, (
            f"record {row.seq} does not link to the record before it (prevHash mismatch): "
            "a record was removed, inserted or rewritten before it"
        )
    if record_hash(row) != row.hash:
        return row.seq, f"record {row.seq} was altered: its content does not match its hash"
    return None


async def verify(
    session: AsyncSession,
    *,
    anchor: tuple[int, str] | None = None,
    batch_size: int = VERIFY_BATCH,
) -> AuditVerification:
    """Walk the chain in seq order, `batch_size` records at a time.

    `anchor` is a (seq, hash) kept from an earlier run: that record must still be there, which
    also catches the newest records being cut off. Each batch is read in a short transaction
    of its own (on SQLite a transaction holds the write lock), so the session must have nothing
    pending.
    """
    expected_prev, expected_seq, checked = GENESIS, 1, 0

    def result(bad: tuple[int, str] | None = None) -> AuditVerification:
        return AuditVerification(
            valid=bad is None,
            checked=checked,
            head_seq=expected_seq - 1 if checked else None,
            head_hash=expected_prev if checked else None,
            first_bad_seq=bad[0] if bad else None,
            reason=bad[1] if bad else None,
        )

    while True:
        rows = list(
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.seq >= expected_seq)
                .order_by(AuditEvent.seq)
                .limit(batch_size)
            )
        )
        await session.commit()
        session.expunge_all()
        for row in rows:
            bad = _problem(row, expected_seq, expected_prev)
            if bad is None and anchor and row.seq == anchor[0] and row.hash != anchor[1]:
                bad = row.seq, f"record {row.seq} no longer has the anchored hash: rewritten"
            if bad:
                return result(bad)
            checked += 1
            expected_prev, expected_seq = row.hash, row.seq + 1
        if len(rows) < batch_size:
            break
    if anchor and anchor[0] >= expected_seq:
        return result(
            (expected_seq, f"the chain ends before the anchored record {anchor[0]}: truncated")
        )
    return result()


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, statement: Select[AuditEvent]) -> Select[AuditEvent]:
        exact = {
            AuditEvent.actor: self.actor,
            AuditEvent.action: self.action,
            AuditEvent.resource_type: self.resource_type,
            AuditEvent.resource_id: self.resource_id,
        }
        for column, value in exact.items():
            if value is not None:
                statement = statement.where(column == value)
        if self.since is not None:
            statement = statement.where(AuditEvent.at >= self.since)
        if self.until is not None:
            statement = statement.where(AuditEvent.at < self.until)
        return statement


async def list_events(
    session: AsyncSession, where: AuditFilter, page: PageRequest
) -> tuple[list[AuditEvent], int]:
    """Oldest first (`orderBy=-seq` for newest first); `since` inclusive, `until` exclusive."""
    return await fetch_page(
        session,
        where.apply(select(AuditEvent)),
        page,
        sort_keys={"seq": AuditEvent.seq, "at": AuditEvent.at},
        default_order=[AuditEvent.seq.asc()],
        tiebreak=AuditEvent.seq,
    )
