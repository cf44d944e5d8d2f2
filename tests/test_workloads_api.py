"""Workload creation rules through the API (no containers needed), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import artifact, spec

WORKLOADS = "/api/v2/console/workloads/"
ARTIFACTS = "/api/v2/registry/artifacts/"


def locs(response: httpx.Response) -> set[tuple[Any, ...]]:
    return {tuple(d["loc"]) for d in response.json()["detail"]}


async def test_exactly_one_artifact_source(api: httpx.AsyncClient) -> None:
    both = {"name": "w", "artifactId": "x", "artifact": {"spec": spec()}}
    assert (await api.post(WORKLOADS, json=both)).status_code == 422
    neither = {"name": "w"}
    response = await api.post(WORKLOADS, json=neither)
    assert response.status_code == 422
    assert "exactly one" in response.json()["message"]


async def test_unknown_artifact(api: httpx.AsyncClient) -> None:
    response = await api.post(WORKLOADS, json={"name": "w", "artifactId": "nope"})
    assert response.status_code == 422
    assert locs(response) == {("body", "artifactId")}


async def test_inline_artifact_errors_name_their_path(api: httpx.AsyncClient) -> None:
    body = {"name": "w", "artifact": {"type": "agent", "spec": spec()}}
    response = await api.post(WORKLOADS, json=body)
    assert response.status_code == 422
    assert locs(response) == {
        ("body", "artifact", "spec", "containerGroups", 0, "containers", 0, "readinessProbe")
    }


async def test_runtime_rules(api: httpx.AsyncClient) -> None:
    made = (await api.post(ARTIFACTS, json=artifact())).json()
    cases: list[tuple[dict[str, Any], tuple[Any, ...]]] = [
        (
            {"containerGroups": [{"name": "other"}]},
            ("body", "runtime", "containerGroups", 0, "name"),
        ),
        (
            {"containerGroups": [{"resourceBundles": ["cpu.none"]}]},
            ("body", "runtime", "containerGroups", 0, "resourceBundles", 0),
        ),
        (
            {"containerGroups": [{"containers": [{"name": "ghost"}]}]},
            ("body", "runtime", "containerGroups", 0, "containers", 0, "name"),
        ),
        (
            {
                "containerGroups": [
                    {"containers": [{"name": "main", "resourceAllocation": {"memory": "1Zi"}}]}
                ]
            },
            (
                "body",
                "runtime",
                "containerGroups",
                0,
                "containers",
                0,
                "resourceAllocation",
                "memory",
            ),
        ),
    ]
    for runtime, loc in cases:
        response = await api.post(
            WORKLOADS, json={"name": "w", "artifactId": made["id"], "runtime": runtime}
        )
        assert response.status_code == 422, runtime
        assert loc in locs(response), (runtime, response.json())
    too_many = {"containerGroups": [{"replicaCount": 51}]}
    response = await api.post(
        WORKLOADS, json={"name": "w", "artifactId": made["id"], "runtime": too_many}
    )
    assert response.status_code == 422


async def test_nim_needs_a_gpu_bundle(api: httpx.AsyncClient) -> None:
    nim = artifact(type="nim", spec=spec(readinessProbe={"path": "/v1/health/ready"}))
    made = (await api.post(ARTIFACTS, json=nim)).json()
    for runtime in ({}, {"containerGroups": [{"resourceBundles": ["cpu.small"]}]}):
        response = await api.post(
            WORKLOADS, json={"name": "w", "artifactId": made["id"], "runtime": runtime}
        )
        assert response.status_code == 422
        assert "GPU" in response.json()["message"]


async def test_temporal_down_leaves_nothing_behind(api: httpx.AsyncClient) -> None:
    """The workload and its inline artifact are rolled back when its workflow cannot start."""
    for status in ("draft", "registered"):  # registered: its new collection too
        body = {"name": "w", "artifact": {"spec": spec(), "status": status}}
        response = await api.post(WORKLOADS, json=body)
        assert response.status_code == 503
        assert response.headers["retry-after"]
    assert (await api.get(WORKLOADS)).json()["totalCount"] == 0
    assert (await api.get(ARTIFACTS)).json()["totalCount"] == 0
    assert (await api.get("/api/v2/registry/artifactCollections/")).json()["totalCount"] == 0
