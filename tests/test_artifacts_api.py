"""Artifacts through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx

from tests.factories import artifact, spec

ARTIFACTS = "/api/v2/registry/artifacts/"
COLLECTIONS = "/api/v2/registry/artifactCollections/"


async def create(api: httpx.AsyncClient, **fields: object) -> dict[str, object]:
    response = await api.post(ARTIFACTS, json=artifact(**fields))  # type: ignore[arg-type]
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_create_draft(api: httpx.AsyncClient) -> None:
    response = await api.post(ARTIFACTS, json=artifact(description="first"))
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "draft"
    assert body["version"] is None and body["collectionId"] is None
    assert body["creator"] == {"id": "admin", "username": "admin", "email": ""}
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"{ARTIFACTS}{body['id']}/"
    fetched = await api.get(f"{ARTIFACTS}{body['id']}/")
    assert fetched.json() == body


async def test_drafts_are_mutable_in_place(api: httpx.AsyncClient) -> None:
    draft = await create(api)
    url = f"{ARTIFACTS}{draft['id']}/"
    patched = await api.patch(url, json={"name": "renamed", "spec": spec("busybox:2")})
    assert patched.status_code == 200
    assert patched.json()["name"] == "renamed"
    assert patched.json()["spec"]["containerGroups"][0]["containers"][0]["imageUri"] == "busybox:2"
    assert patched.json()["version"] is None
    replaced = await api.put(
        url, json={"name": "whole", "type": "generic", "spec": spec("busybox:3")}
    )
    assert replaced.status_code == 200 and replaced.json()["name"] == "whole"
    assert (await api.delete(url)).status_code == 204
    assert (await api.get(url)).status_code == 404


async def test_registering_a_draft_assigns_the_next_version(api: httpx.AsyncClient) -> None:
    draft = await create(api)
    registered = await api.patch(f"{ARTIFACTS}{draft['id']}/", json={"status": "registered"})
    assert registered.status_code == 200
    body = registered.json()
    assert body["status"] == "registered" and body["version"] == 1
    assert body["registeredAt"] is not None
    collection = (await api.get(f"{COLLECTIONS}{body['collectionId']}/")).json()
    assert collection["lastVersionNumber"] == 1 and collection["numArtifacts"] == 1
    assert collection["name"] == "app" and collection["type"] == "generic"


async def test_registered_artifacts_are_immutable(api: httpx.AsyncClient) -> None:
    done = await create(api, status="registered")
    url = f"{ARTIFACTS}{done['id']}/"
    for attempt in (
        api.patch(url, json={"name": "other"}),
        api.patch(url, json={"status": "registered"}),
        api.put(url, json={"name": "x", "spec": spec()}),
        api.delete(url),
    ):
        response = await attempt
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "conflict"
        assert "registered" in response.json()["message"]
    assert (await api.get(url)).json() == done


async def test_direct_registration_into_a_collection(api: httpx.AsyncClient) -> None:
    first = await create(api, status="registered")
    assert first["version"] == 1
    second = await create(api, status="registered", collectionId=first["collectionId"])
    assert second["version"] == 2 and second["collectionId"] == first["collectionId"]
    versions = (await api.get(f"{COLLECTIONS}{first['collectionId']}/versions/")).json()
    assert [v["version"] for v in versions["data"]] == [1, 2]
    newest_first = await api.get(
        f"{COLLECTIONS}{first['collectionId']}/versions/", params={"orderBy": "-version"}
    )
    assert [v["version"] for v in newest_first.json()["data"]] == [2, 1]


async def test_collection_type_must_match(api: httpx.AsyncClient) -> None:
    first = await create(api, status="registered")
    response = await api.post(
        ARTIFACTS,
        json=artifact(
            type="agent",
            status="registered",
            collectionId=first["collectionId"],
            spec=spec(readinessProbe={"path": "/ready"}),
        ),
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "collectionId"]
    missing = await api.post(ARTIFACTS, json=artifact(status="registered", collectionId="nope"))
    assert missing.status_code == 422
    assert (await api.get(ARTIFACTS)).json()["totalCount"] == 1  # nothing half-written


async def test_clone_registers_into_the_source_collection(api: httpx.AsyncClient) -> None:
    v1 = await create(api, status="registered")
    clone = await api.post(f"{ARTIFACTS}{v1['id']}/clone/", json={"name": "next"})
    assert clone.status_code == 201
    draft = clone.json()
    assert draft["status"] == "draft" and draft["name"] == "next"
    assert draft["collectionId"] == v1["collectionId"] and draft["spec"] == v1["spec"]
    v2 = await api.patch(f"{ARTIFACTS}{draft['id']}/", json={"status": "registered"})
    assert v2.json()["version"] == 2
    default_name = await api.post(f"{ARTIFACTS}{v1['id']}/clone/")
    assert default_name.status_code == 201 and default_name.json()["name"] == "app"


async def test_stale_etag_is_refused(api: httpx.AsyncClient) -> None:
    draft = await create(api)
    url = f"{ARTIFACTS}{draft['id']}/"
    etag = (await api.get(url)).headers["etag"]
    alice = await api.patch(url, json={"name": "alice"}, headers={"If-Match": etag})
    assert alice.status_code == 200
    assert alice.headers["etag"] != etag
    bob = await api.patch(url, json={"name": "bob"}, headers={"If-Match": etag})
    assert bob.status_code == 412
    assert bob.json()["code"] == "precondition_failed"
    assert (await api.get(url)).json()["name"] == "alice"
    assert (await api.delete(url, headers={"If-Match": etag})).status_code == 412
    bad = await api.put(url, json={"name": "x", "spec": spec()}, headers={"If-Match": "garbage"})
    assert bad.status_code == 412
    fresh = await api.patch(
        url, json={"name": "carol"}, headers={"If-Match": alice.headers["etag"]}
    )
    assert fresh.status_code == 200


async def test_changing_type_rechecks_the_stored_spec(api: httpx.AsyncClient) -> None:
    draft = await create(api)
    response = await api.patch(f"{ARTIFACTS}{draft['id']}/", json={"type": "agent"})
    assert response.status_code == 422
    assert "readiness probe" in response.json()["detail"][0]["msg"]


async def test_spec_errors_name_every_bad_field(api: httpx.AsyncClient) -> None:
    body = {
        "name": "",
        "type": "nim",
        "spec": {"containerGroups": [{"containers": [{"imageUri": "Bad Image", "port": 80}]}]},
    }
    response = await api.post(ARTIFACTS, json=body)
    assert response.status_code == 422
    locs = {tuple(d["loc"]) for d in response.json()["detail"]}
    assert ("body", "name") in locs
    assert ("body", "spec", "containerGroups", 0, "containers", 0, "imageUri") in locs
    assert ("body", "spec", "containerGroups", 0, "containers", 0, "port") in locs
    assert "input" not in response.json()["detail"][0]


async def test_type_rules_through_the_api(api: httpx.AsyncClient) -> None:
    response = await api.post(ARTIFACTS, json=artifact(type="model"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == [
        "body", "spec", "containerGroups", 0, "containers", 0, "readinessProbe"
    ]  # fmt: skip
    assert (await api.get(ARTIFACTS)).json()["totalCount"] == 0


async def test_list_pagination_filters_and_order(api: httpx.AsyncClient) -> None:
    for index in range(5):
        await create(api, name=f"svc-{index}", description="alpha" if index % 2 else "beta")
    await create(api, name="registered-one", status="registered")

    first = (await api.get(ARTIFACTS, params={"limit": 2, "orderBy": "name"})).json()
    assert first["count"] == 2 and first["totalCount"] == 6 and first["previous"] is None
    assert [a["name"] for a in first["data"]] == ["registered-one", "svc-0"]
    second = (await api.get(first["next"])).json()
    assert [a["name"] for a in second["data"]] == ["svc-1", "svc-2"]
    assert second["previous"].endswith("offset=0&limit=2") or "offset=0" in second["previous"]
    last = (await api.get(second["next"])).json()
    assert last["next"] is None and last["count"] == 2

    descending = (await api.get(ARTIFACTS, params={"orderBy": "-name", "limit": 1})).json()
    assert descending["data"][0]["name"] == "svc-4"
    assert (await api.get(ARTIFACTS, params={"search": "ALPHA"})).json()["totalCount"] == 2
    assert (await api.get(ARTIFACTS, params={"status": "registered"})).json()["totalCount"] == 1
    assert (await api.get(ARTIFACTS, params={"type": "agent"})).json()["totalCount"] == 0
    registered = (await api.get(ARTIFACTS, params={"status": "registered"})).json()["data"][0]
    in_collection = await api.get(ARTIFACTS, params={"collectionId": registered["collectionId"]})
    assert in_collection.json()["totalCount"] == 1


async def test_list_parameter_errors(api: httpx.AsyncClient) -> None:
    for params in (
        {"limit": 101},
        {"limit": 0},
        {"offset": -1},
        {"orderBy": "color"},
        {"type": "x"},
    ):
        response = await api.get(ARTIFACTS, params=params)
        assert response.status_code == 422, params
        assert response.json()["detail"][0]["loc"][0] == "query"


async def test_not_found(api: httpx.AsyncClient) -> None:
    for url in (f"{ARTIFACTS}abc/", f"{COLLECTIONS}abc/", f"{COLLECTIONS}abc/versions/"):
        response = await api.get(url)
        assert response.status_code == 404
        assert "'abc' was not found" in response.json()["message"]
    assert (await api.patch(f"{ARTIFACTS}abc/", json={"name": "x"})).status_code == 404
    assert (await api.post(f"{ARTIFACTS}abc/clone/")).status_code == 404


async def test_paths_work_with_and_without_trailing_slash(api: httpx.AsyncClient) -> None:
    created = await api.post(ARTIFACTS.rstrip("/"), json=artifact())
    assert created.status_code == 201
    assert (await api.get(f"{ARTIFACTS}{created.json()['id']}")).status_code == 200


async def test_search_wildcards_are_literal(api: httpx.AsyncClient) -> None:
    for name in ("a_b", "axb", "100%", "1000"):
        await create(api, name=name)
    assert [
        a["name"] for a in (await api.get(ARTIFACTS, params={"search": "a_b"})).json()["data"]
    ] == ["a_b"]
    assert [
        a["name"] for a in (await api.get(ARTIFACTS, params={"search": "0%"})).json()["data"]
    ] == ["100%"]
