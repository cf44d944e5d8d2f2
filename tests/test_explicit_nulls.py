"""Explicit nulls in edit bodies, on SQLite and PostgreSQL: every PATCH and PUT route, a null
at every field of a full body. A null answers 200 (a top-level PATCH field stays unchanged,
unless null has a documented meaning) or 422 naming that field (or, where the null is allowed
but leaves its object incomplete, the object), never a 500, and a refused
edit changes nothing.

A seeded fuzz run found `PATCH /registry/artifacts/{id}/` with `"name": null` failing the
catalog's NOT NULL constraint (issue 15); this walks every field so no sibling is missed.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from models.artifacts import ArtifactCreate
from models.deployments import DeploymentCreate
from models.spec import SPEC_EXAMPLE
from models.workloads import WorkloadCreate
from services import artifacts, deployments, workloads
from services.bundles import BundleCatalog
from tests.factories import ADMIN

Path = tuple[str | int, ...]
# Builds a resource and answers the URL of the route under test.
Make = Callable[[FastAPI, httpx.AsyncClient], Awaitable[str]]


async def _artifact(app: FastAPI, api: httpx.AsyncClient, status: str = "draft") -> str:
    body = {"name": "app", "description": "first", "status": status, "spec": SPEC_EXAMPLE}
    made = await api.post("/api/v2/registry/artifacts/", json=body)
    assert made.status_code == 201, made.text
    return f"/api/v2/registry/artifacts/{made.json()['id']}/"


async def _collection(app: FastAPI, api: httpx.AsyncClient) -> str:
    artifact = (await api.get(await _artifact(app, api, "registered"))).json()
    return f"/api/v2/registry/artifactCollections/{artifact['collectionId']}/"


async def _workload_id(app: FastAPI, *, registered: bool) -> str:
    data = ArtifactCreate.model_validate(
        {"name": "app", "status": "registered" if registered else "draft", "spec": SPEC_EXAMPLE}
    )
    async with app.state.context.sessions() as session, session.begin():
        artifact = await artifacts.create_artifact(session, data, ADMIN)
        workload = await workloads.create_workload(
            session,
            WorkloadCreate(name="w", description="first", artifact_id=artifact.id),
            ADMIN,
            BundleCatalog.load(),
        )
    return workload.id


async def _workload(app: FastAPI, api: httpx.AsyncClient) -> str:
    return f"/api/v2/console/workloads/{await _workload_id(app, registered=False)}/"


async def _deployment(app: FastAPI, api: httpx.AsyncClient) -> str:
    data = DeploymentCreate.model_validate(
        {
            "name": "d",
            "description": "first",
            "workloadId": await _workload_id(app, registered=True),
            "maxBodyBytes": 4096,
        }
    )
    async with app.state.context.sessions() as session, session.begin():
        deployment = await deployments.create_deployment(session, data, ADMIN)
    return f"/api/v2/console/deployments/{deployment.id}/"


async def _secret(app: FastAPI, api: httpx.AsyncClient) -> str:
    name = f"s-{secrets.token_hex(4)}"  # secret names are unique
    made = await api.post("/api/v2/secrets/", json={"name": name, "value": "v4lue"})
    assert made.status_code == 201, made.text
    return f"/api/v2/secrets/{made.json()['id']}/"


def _shared(make: Make) -> Make:
    async def made(app: FastAPI, api: httpx.AsyncClient) -> str:
        return f"{await make(app, api)}sharedRoles/"

    return made


ROLES = {
    "operation": "updateRoles",
    "roles": [{"username": "bob", "role": "user", "shareRecipientType": "user"}],
}


@dataclass(frozen=True)
class Route:
    method: str
    make: Make
    body: dict[str, Any]
    # Top-level fields whose null is a value of its own (test_nulls_with_a_meaning_set_it).
    null_means: tuple[str, ...] = ()


ROUTES = {
    "PATCH artifact": Route(
        "PATCH",
        _artifact,
        {
            "name": "n",
            "description": "d",
            "type": "generic",
            "collectionId": None,
            "spec": SPEC_EXAMPLE,
        },
        null_means=("collectionId",),
    ),
    "PUT artifact": Route(
        "PUT",
        _artifact,
        {
            "name": "n",
            "description": "d",
            "type": "generic",
            "collectionId": None,
            "spec": SPEC_EXAMPLE,
        },
    ),
    "PATCH workload": Route(
        "PATCH",
        _workload,
        {
            "name": "n",
            "description": "d",
            "importance": "high",
            "runtime": {
                "containerGroups": [
                    {
                        "name": "default",
                        "replicaCount": 1,  # unchanged: a scale would need Temporal
                        "resourceBundles": ["cpu.small"],
                        "containers": [
                            {
                                "name": "main",
                                "resourceAllocation": {"cpu": 0.1, "memory": "64Mi"},
                                "environmentVars": [{"name": "A", "value": "b"}],
                            }
                        ],
                    }
                ]
            },
        },
    ),
    "PATCH deployment": Route(
        "PATCH",
        _deployment,
        {
            "name": "n",
            "description": "d",
            "health": {
                "path": "/h",
                "intervalSeconds": 5,
                "timeoutSeconds": 1.5,
                "failureThreshold": 2,
            },
            "maxBodyBytes": 1024,
        },
        null_means=("maxBodyBytes",),
    ),
    **{
        f"PATCH {kind} sharedRoles": Route("PATCH", _shared(make), ROLES)
        for kind, make in {
            "artifact": _artifact,
            "collection": _collection,
            "workload": _workload,
            "deployment": _deployment,
            "secret": _secret,
        }.items()
    },
}


def paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """The JSON path of every value inside `value` (dict keys and list items)."""
    items: Any = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        yield (*prefix, key)
        yield from paths(item, (*prefix, key))


def with_null(body: dict[str, Any], path: Path) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = None
    return changed


def stable(resource: Any) -> Any:
    """A resource without what every write changes."""
    if isinstance(resource, dict):
        return {k: v for k, v in resource.items() if k not in ("updatedAt",)}
    return resource


async def _read(api: httpx.AsyncClient, url: str) -> Any:
    response = await api.get(url)
    assert response.status_code == 200, response.text
    return stable(response.json())


@pytest.mark.parametrize("name", ROUTES)
async def test_a_null_is_unchanged_or_a_422_naming_it(
    app: FastAPI, api: httpx.AsyncClient, name: str
) -> None:
    route = ROUTES[name]
    problems = [
        problem
        for path in paths(route.body)
        if (problem := await _null_problem(app, api, route, path))
    ]
    assert not problems, "\n".join(problems)


async def _null_problem(
    app: FastAPI, api: httpx.AsyncClient, route: Route, path: Path
) -> str | None:
    """What is wrong with the answer to a null at `path` on a fresh resource, if anything."""
    url = await route.make(app, api)
    before = await _read(api, url)
    top_level_patch = route.method == "PATCH" and len(path) == 1
    # A top-level PATCH null is sent alone, so "unchanged" is checkable; deeper nulls and
    # PUT bodies go in the full body, where every sibling is valid.
    body = {path[0]: None} if top_level_patch else with_null(route.body, path)
    response = await api.request(route.method, url, json=body)
    if response.status_code not in (200, 204, 422):
        return f"{path}: {response.status_code} {response.text}"
    if response.status_code == 422:
        locs = {tuple(detail["loc"]) for detail in response.json()["detail"]}
        # The field itself, or (a null that is allowed, but leaves its object incomplete,
        # such as a probe with no action) the object holding it.
        if not {("body", *path), ("body", *path[:-1])} & locs:
            return f"{path}: not named in {locs}"
        if await _read(api, url) != before:
            return f"{path}: a refused edit changed something"
    elif top_level_patch and path[0] not in route.null_means and await _read(api, url) != before:
        return f"{path}: a null changed the resource"
    return None


async def test_nulls_with_a_meaning_set_it(api: httpx.AsyncClient, app: FastAPI) -> None:
    deployment = await _deployment(app, api)
    assert (await api.get(deployment)).json()["maxBodyBytes"] == 4096
    reset = await api.patch(deployment, json={"maxBodyBytes": None})
    assert reset.status_code == 200 and reset.json()["maxBodyBytes"] is None
    artifact = await _artifact(app, api)
    named = await api.patch(artifact, json={"name": None, "description": None, "type": None})
    assert named.status_code == 200, named.text
    assert (named.json()["name"], named.json()["description"]) == ("app", "first")
