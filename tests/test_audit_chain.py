"""The audit chain on SQLite and PostgreSQL: tampering is detected (through the API and by
`wapi audit verify`), and concurrent writers keep one chain."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from catalog import database
from catalog.tables import AuditEvent
from cli import app as cli_app
from models.audit import AuditEntry
from services.audit import append, append_prepared, canonical, prepare, record_hash
from services.audit import verify as audit_verify
from tests.factories import artifact
from tests.test_audit import ARTIFACTS, VERIFY, rows, verify


async def test_tampering_is_detected(app: FastAPI, api: httpx.AsyncClient) -> None:
    for _ in range(5):
        await api.post(ARTIFACTS, json=artifact())
    intact = await verify(api)
    assert intact == {
        "valid": True,
        "checked": 5,
        "headSeq": 5,
        "headHash": (await rows(app))[-1].hash,
        "firstBadSeq": None,
        "reason": None,
    }
    original = (await rows(app))[2].summary

    await set_summary(app, 3, {**original, "fields": ["name"]})
    edited = await verify(api)
    assert (edited["valid"], edited["firstBadSeq"]) == (False, 3)
    assert "altered" in edited["reason"] and edited["headSeq"] == 2

    await set_summary(app, 3, original)
    assert (await verify(api))["valid"]

    async with app.state.context.sessions() as session, session.begin():
        await session.execute(delete(AuditEvent).where(AuditEvent.seq == 3))
    deleted = await verify(api)
    assert (deleted["valid"], deleted["firstBadSeq"]) == (False, 3)
    assert "missing" in deleted["reason"]


async def set_summary(app: FastAPI, seq: int, summary: dict[str, Any]) -> None:
    async with app.state.context.sessions() as session, session.begin():
        await session.execute(
            update(AuditEvent).where(AuditEvent.seq == seq).values(summary=summary)
        )


async def test_a_rewritten_or_forged_record_breaks_the_link(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    for _ in range(4):
        await api.post(ARTIFACTS, json=artifact())
    head = await verify(api)
    async with app.state.context.sessions() as session, session.begin():
        row = await session.get(AuditEvent, 2)
        assert row is not None
        row.actor = "mallory"
        row.hash = record_hash(row)  # a consistent record, but the next one points elsewhere
    rewritten = await verify(api)
    assert (rewritten["valid"], rewritten["firstBadSeq"]) == (False, 3)
    assert "prevHash" in rewritten["reason"]

    # Cutting off the newest records leaves a valid chain; the anchor from earlier catches it.
    async with app.state.context.sessions() as session, session.begin():
        await session.execute(delete(AuditEvent).where(AuditEvent.seq >= 2))
    assert (await verify(api))["valid"]
    anchored = await verify(api, anchorSeq=head["headSeq"], anchorHash=head["headHash"])
    assert (anchored["valid"], anchored["firstBadSeq"]) == (False, 2)
    assert "truncated" in anchored["reason"]
    half = await api.get(VERIFY, params={"anchorSeq": 3})
    assert half.status_code == 422


async def test_concurrent_requests_keep_one_chain(app: FastAPI, api: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(*(api.post(ARTIFACTS, json=artifact()) for _ in range(20)))
    assert {r.status_code for r in responses} == {201}
    recorded = await rows(app)
    assert [row.seq for row in recorded] == list(range(1, 21))
    assert {row.request_id for row in recorded} == {r.headers["x-request-id"] for r in responses}
    assert (await verify(api))["valid"]


async def test_the_cli_verifies_the_database_directly(
    app: FastAPI, api: httpx.AsyncClient, catalog_url: str
) -> None:
    for _ in range(3):
        await api.post(ARTIFACTS, json=artifact())
    runner = CliRunner()
    env = {"WAPI_DATABASE_URL": catalog_url}

    def run(*args: str) -> Any:
        return runner.invoke(cli_app, ["audit", "verify", *args], env=env)

    # asyncio.run inside the command needs a thread without a running event loop.
    ok = await asyncio.to_thread(run)
    assert ok.exit_code == 0, ok.output
    assert '"valid": true' in ok.stdout and '"headSeq": 3' in ok.stdout
    await set_summary(app, 2, {"fields": []})
    broken = await asyncio.to_thread(run)
    assert broken.exit_code == 1
    assert "NOT valid at seq 2" in broken.stderr and "altered" in broken.stderr
    bad_anchor = await asyncio.to_thread(run, "--anchor", "3:abc")
    assert bad_anchor.exit_code == 2


def test_a_prepared_entry_hashes_as_its_row_does() -> None:
    """Entries are encoded ahead of the append (all but `seq`); the record verification reads
    back must hash the same."""
    entry = AuditEntry(
        actor="zoë",
        actor_kind="invoke_token",
        action="deployment.invoke",
        resource_type="deployment",
        resource_id="d1",
        request_id='r"1',
        source_ip=None,
        status_code=200,
        latency_ms=1.25,
        summary={"count": 2, "calls": [[0, "a", "/x\u2028", 7], [15, "b", "/", 9]], "é": None},
    )
    row = AuditEvent(seq=41, prev_hash="0" * 64, **dict(entry))
    assert prepare(entry).canonical(41) == canonical(row)


async def test_a_prepared_batch_is_stored_as_it_was_hashed(catalog_engine: AsyncEngine) -> None:
    """The gateway's batches (`append_prepared`: one INSERT, each summary's JSON encoded once,
    for its hash, and stored as it is) follow records written one by one, and the chain
    verifies on each backend, with the summaries read back as they were given."""
    sessions = database.create_sessionmaker(catalog_engine)
    summary: dict[str, Any] = {
        "count": 2,
        "calls": [[0, "a", "/x\u2028", 7]],
        "é": {"z": 1, "a": []},
    }
    entries = [
        AuditEntry(actor=f"a{index}", action="deployment.invoke", resource_type="deployment",
                   resource_id="d1", status_code=200, summary=summary | {"n": index})
        for index in range(3)
    ]  # fmt: skip
    async with sessions() as session, session.begin():
        await append(session, [AuditEntry(actor="admin", action="x.create", resource_type="x")])
    async with sessions() as session, session.begin():
        await append_prepared(session, [prepare(entry) for entry in entries])
    async with sessions() as session:
        result = await audit_verify(session)
        stored = (await session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all()
    assert result.valid and result.checked == 4
    assert [row.summary for row in stored[1:]] == [entry.summary for entry in entries]
