"""`AuditWriter` and the chain itself, on SQLite and PostgreSQL: batching, flushing, overflow,
several writers at once, and hashes that do not depend on the backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog import database
from catalog.tables import AuditEvent
from models.audit import AuditEntry
from services import audit
from services.audit_writer import AuditWriter

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(catalog_url: str) -> AsyncIterator[Sessions]:
    engine = database.create_engine(catalog_url)
    await database.migrate(engine)
    yield database.create_sessionmaker(engine)
    await engine.dispose()


def invocation(n: int = 0) -> AuditEntry:
    return AuditEntry(
        actor="token-1",
        actor_kind="invoke_token",
        action="deployment.invoke",
        resource_type="deployment",
        resource_id="d1",
        status_code=200,
        latency_ms=1.5,
        summary={"n": n},
    )


async def count(sessions: Sessions) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(AuditEvent)) or 0


async def wait_for_count(sessions: Sessions, expected: int, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (found := await count(sessions)) < expected:
        assert asyncio.get_running_loop().time() < deadline, f"{found} of {expected} written"
        await asyncio.sleep(0.05)


async def check_chain(sessions: Sessions, expected: int) -> None:
    async with sessions() as session:
        seqs = list(await session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))
        result = await audit.verify(session, batch_size=7)  # several batches
    assert seqs == list(range(1, expected + 1))
    assert result.valid and result.checked == expected, result


async def test_hashes_do_not_depend_on_the_backend(sessions: Sessions) -> None:
    entry = AuditEntry(
        at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        actor="al\x00ice",
        action="artifact.create",
        resource_type="artifact",
        resource_id="a" * 80,
        latency_ms=12.34567,
        summary={"big": 1e20, "small": 1e-7, "text": "é\ud800\x00", "nested": {"b": [1, None]}},
    )
    async with sessions() as session, session.begin():
        [row] = await audit.append(session, [entry])
    # Pinned: changing the canonical form would make every existing chain look tampered.
    assert row.hash == "d648b9402b23cec11ad38c515583ad675b1befe7ec8d005f1adc7faa5ef9edc9"
    # Read back from either backend, the values still produce that hash.
    async with sessions() as session:
        stored = await session.get(AuditEvent, 1)
        assert stored is not None and audit.record_hash(stored) == row.hash
        assert (stored.actor, stored.summary["text"]) == ("al\ufffdice", "é?\ufffd")
        assert stored.summary["big"] == 10**20 and len(stored.resource_id or "") == 64
    await check_chain(sessions, 1)


async def test_enqueued_entries_are_written_while_the_writer_runs(sessions: Sessions) -> None:
    # By the writer's own timer, not at stop; the bound is generous for a loaded machine.
    writer = AuditWriter(sessions)
    await writer.start()
    try:
        assert all(writer.enqueue(invocation(n)) for n in range(5))
        await wait_for_count(sessions, 5, within=30)
    finally:
        await writer.stop()


async def test_a_full_batch_is_written_without_waiting_for_the_interval(
    sessions: Sessions,
) -> None:
    writer = AuditWriter(sessions, flush_interval=3600, batch_size=10)
    await writer.start()
    try:
        for n in range(10):
            writer.enqueue(invocation(n))
        await wait_for_count(sessions, 10, within=30)  # far less than the interval
    finally:
        await writer.stop()


async def test_stop_flushes(sessions: Sessions) -> None:
    writer = AuditWriter(sessions, flush_interval=60)
    await writer.start()
    for n in range(7):
        writer.enqueue(invocation(n))
    assert await count(sessions) == 0
    await writer.stop()
    assert await count(sessions) == 7 and writer.dropped == 0
    assert not writer.enqueue(invocation()) and writer.dropped == 1


async def test_overflow_drops_counts_and_never_blocks(sessions: Sessions) -> None:
    registry = CollectorRegistry()
    writer = AuditWriter(
        sessions, flush_interval=60, batch_size=1000, max_pending=5, registry=registry
    )
    await writer.start()
    accepted = [writer.enqueue(invocation(n)) for n in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert writer.dropped == 3 and writer.pending == 5
    metrics = generate_latest(registry).decode()
    assert "wapi_audit_dropped_entries_total 3.0" in metrics
    assert "wapi_audit_pending_entries 5.0" in metrics
    await writer.stop()
    assert await count(sessions) == 5
    assert "wapi_audit_dropped" not in generate_latest(registry).decode()  # unregistered


async def test_a_failed_batch_is_retried(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_append = audit.append
    failures = [RuntimeError("database gone")]

    async def flaky(session: AsyncSession, entries: list[AuditEntry]) -> list[AuditEvent]:
        if failures:
            raise failures.pop()
        return await real_append(session, entries)

    monkeypatch.setattr(audit, "append", flaky)
    writer = AuditWriter(sessions, flush_interval=0.05)
    await writer.start()
    for n in range(3):
        writer.enqueue(invocation(n))
    await wait_for_count(sessions, 3, within=30)
    await writer.stop()
    assert writer.failed_writes == 1 and writer.dropped == 0
    await check_chain(sessions, 3)


async def test_writers_in_several_processes_keep_one_chain(
    sessions: Sessions, catalog_url: str
) -> None:
    # A second engine has its own connections, as another API process would.
    other_engine = database.create_engine(catalog_url)
    writers = [
        AuditWriter(sessions, flush_interval=0.01, batch_size=7),
        AuditWriter(database.create_sessionmaker(other_engine), flush_interval=0.01, batch_size=7),
    ]
    for writer in writers:
        await writer.start()

    async def client(writer: AuditWriter, n: int) -> None:
        for i in range(15):
            writer.enqueue(invocation(n * 100 + i))
            if i % 5 == 0:
                await writer.append_now(invocation(-n))
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(client(writers[n % 2], n) for n in range(20)))
    finally:
        for writer in writers:
            await writer.stop()
        await other_engine.dispose()
    assert [(w.failed_writes, w.dropped) for w in writers] == [(0, 0), (0, 0)]
    await check_chain(sessions, 20 * 15 + 20 * 3)
