"""Concurrent registrations into one collection get distinct, consecutive version numbers."""

from __future__ import annotations

import asyncio

import httpx

from tests.factories import artifact

ARTIFACTS = "/api/v2/registry/artifacts/"


async def test_concurrent_registrations_get_consecutive_versions(api: httpx.AsyncClient) -> None:
    v1 = (await api.post(ARTIFACTS, json=artifact(status="registered"))).json()
    drafts = [
        (
            await api.post(ARTIFACTS, json=artifact(name=f"d{i}", collectionId=v1["collectionId"]))
        ).json()
        for i in range(12)
    ]
    direct = [
        api.post(ARTIFACTS, json=artifact(status="registered", collectionId=v1["collectionId"]))
        for _ in range(12)
    ]
    promoted = [
        api.patch(f"{ARTIFACTS}{draft['id']}/", json={"status": "registered"}) for draft in drafts
    ]
    # Each request has its own session and database connection: real concurrency in the database.
    responses = await asyncio.gather(*direct, *promoted)
    assert [r.status_code for r in responses if r.status_code not in (200, 201)] == []
    versions = sorted(r.json()["version"] for r in responses)
    assert versions == list(range(2, 26))
    collection = await api.get(f"/api/v2/registry/artifactCollections/{v1['collectionId']}/")
    assert collection.json()["lastVersionNumber"] == 25
