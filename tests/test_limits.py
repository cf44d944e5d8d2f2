"""Limits that apply whatever a request says: every container limited (the default bundle when
none is named, sidecars too), overrides within the bundle, strict quantities, a bounded spec,
and images only from allowed registries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client

from api.app import create_app
from config.settings import Settings
from models.spec import ArtifactSpec
from models.workloads import WorkloadRuntime
from services.bundles import BundleCatalog
from services.limits import Limits, image_allowed, qualified
from services.quantities import parse_bytes
from services.spec_rules import normalized
from services.workload_runtime import build_plan
from tests.conftest import ADMIN_KEY, client_for
from tests.factories import registered_workload, spec

WORKLOADS = "/api/v2/console/workloads/"
ARTIFACTS = "/api/v2/registry/artifacts/"
SIDECAR = {"name": "shipper", "imageUri": "localhost/shipper:1", "primary": False}


def two_containers() -> dict[str, Any]:
    body = spec("localhost/app:1", primary=True)
    body["containerGroups"][0]["containers"].append(SIDECAR)
    return body


def workload(runtime: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "name": "w",
        "artifact": {"spec": two_containers()},
        "runtime": runtime or {},
        **fields,
    }


def allocation(**resources: Any) -> dict[str, Any]:
    return {
        "containerGroups": [
            {
                "resourceBundles": ["cpu.small"],
                "containers": [{"name": "main", "resourceAllocation": resources}],
            }
        ]
    }


def plan_of(runtime: dict[str, Any], limits: Limits = Limits()) -> Any:
    artifact_spec = normalized(ArtifactSpec.model_validate(two_containers()))
    return build_plan(
        "w", 1, artifact_spec, WorkloadRuntime.model_validate(runtime), BundleCatalog.load(), limits
    )


@pytest.mark.parametrize("memory", ["0.5", "1.5", "0", "512Zi", "lots"])
def test_quantities_parse_strictly(memory: str) -> None:
    with pytest.raises(ValueError):
        parse_bytes(memory)


def test_without_a_bundle_every_container_gets_the_default_bundle() -> None:
    default = BundleCatalog.load().default
    assert default.id == "cpu.small"
    [group] = plan_of({}).groups
    for container in group.containers:  # the sidecar too
        assert (container.cpu, container.memory_bytes) == (default.cpu_count, default.memory_bytes)
        assert container.pids_limit == 1024 and container.read_only_root is False
    confined = plan_of({}, Limits(pids=200, read_only_root=True)).groups[0].containers
    assert {(c.pids_limit, c.read_only_root) for c in confined} == {(200, True)}


def test_overrides_lower_one_container_and_gpus_stay_with_the_primary() -> None:
    runtime = {
        "containerGroups": [
            {
                "resourceBundles": ["gpu.t4.small"],
                "containers": [
                    {"name": "shipper", "resourceAllocation": {"cpu": 0.25, "memory": "64Mi"}}
                ],
            }
        ]
    }
    main, shipper = plan_of(runtime).groups[0].containers
    assert (main.cpu, main.memory_bytes, main.gpu_count) == (4, 16 * 2**30, 1)
    assert (shipper.cpu, shipper.memory_bytes, shipper.gpu_count) == (0.25, 64 * 2**20, 0)


def test_a_default_bundle_the_catalog_lacks_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bundles.yaml"
    path.write_text("bundles:\n  - {id: tiny, cpu: 0.1, memory: 64Mi}\n")
    assert BundleCatalog.load(path).default.id == "tiny"  # no cpu.small: the first one
    with pytest.raises(ValueError, match="WAPI_DEFAULT_RESOURCE_BUNDLE"):
        BundleCatalog.load(path, default="cpu.huge")


async def test_the_workload_shows_the_bundle_that_limits_it(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    async with app.state.context.sessions() as session, session.begin():
        row = await registered_workload(session)  # names no bundle
    shown = (await api.get(f"{WORKLOADS}{row.id}/")).json()
    assert [group["resolvedBundle"]["id"] for group in shown["runtime"]["containerGroups"]] == [
        "cpu.small"
    ]


async def test_overrides_cannot_exceed_the_bundle(api: httpx.AsyncClient) -> None:
    answer = await api.post(WORKLOADS, json=workload(allocation(cpu=512, memory="900Ti")))
    assert answer.status_code == 422, answer.text
    where = "containerGroups", 0, "containers", 0, "resourceAllocation"
    problems = {tuple(d["loc"][2:]): d["msg"] for d in answer.json()["detail"]}
    assert set(problems) == {(*where, "cpu"), (*where, "memory")}
    assert "cpu.small" in problems[(*where, "cpu")]


@pytest.mark.parametrize(
    ("memory", "message"),
    [("0.5", "whole number of bytes"), ("1Mi", "at least 6Mi"), ("1.5", "whole number")],
)
async def test_memory_must_be_whole_bytes_and_enough(
    api: httpx.AsyncClient, memory: str, message: str
) -> None:
    answer = await api.post(WORKLOADS, json=workload(allocation(memory=memory)))
    assert answer.status_code == 422
    [detail] = answer.json()["detail"]
    assert detail["loc"][-1] == "memory" and message in detail["msg"]


async def test_tiny_cpu_is_refused(api: httpx.AsyncClient) -> None:
    answer = await api.post(WORKLOADS, json=workload(allocation(cpu=0.001)))
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"][-1] == "cpu"


async def test_a_large_spec_is_refused_at_its_path(api: httpx.AsyncClient) -> None:
    big = [{"name": f"V{i}", "value": "x" * 30000} for i in range(10)]  # ~300 KB, under 1 MiB
    answer = await api.post(ARTIFACTS, json={"name": "big", "spec": spec(environmentVars=big)})
    assert answer.status_code == 422, answer.text
    [detail] = answer.json()["detail"]
    assert detail["loc"] == ["body", "spec"] and "WAPI_MAX_SPEC_BYTES" in detail["msg"]


async def test_a_spec_and_runtime_together_must_fit(api: httpx.AsyncClient) -> None:
    half = [{"name": f"V{i}", "value": "x" * 30000} for i in range(5)]
    made = await api.post(ARTIFACTS, json={"name": "half", "spec": spec(environmentVars=half)})
    assert made.status_code == 201, made.text
    runtime = {"containerGroups": [{"containers": [{"name": "main", "environmentVars": half}]}]}
    answer = await api.post(
        WORKLOADS, json={"name": "w", "artifactId": made.json()["id"], "runtime": runtime}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "runtime"]


@pytest.mark.parametrize(
    ("image", "registries", "allowed"),
    [
        ("registry.example.com/team/app:1", ("registry.example.com",), True),
        ("registry.example.com/other/app:1", ("registry.example.com/team",), False),
        ("registry.example.com/team/app:1", ("registry.example.com/team",), True),
        ("busybox", ("docker.io",), True),
        ("library/busybox:1", ("registry.example.com",), False),
        ("localhost/app:1", ("localhost",), True),
        ("registry.example.com.evil.io/app:1", ("registry.example.com",), False),
        ("127.0.0.1:5000/app", ("127.0.0.1:5000",), True),
    ],
)
def test_registry_allow_list(image: str, registries: tuple[str, ...], allowed: bool) -> None:
    assert image_allowed(image, registries) is allowed
    assert qualified("busybox") == "docker.io/library/busybox"


@pytest.fixture
async def strict_app(settings: Settings, unreachable_temporal: Client) -> AsyncIterator[FastAPI]:
    strict = settings.model_copy(update={"allowed_registries": ["registry.example.com/team"]})
    app = create_app(strict, temporal_client=unreachable_temporal)
    async with app.router.lifespan_context(app):
        yield app


async def test_images_only_from_allowed_registries(
    app: FastAPI, api: httpx.AsyncClient, strict_app: FastAPI
) -> None:
    # Written before the list was configured (same catalog, another API process).
    old = await api.post(ARTIFACTS, json={"name": "old", "spec": spec("docker.io/evil/app:1")})
    assert old.status_code == 201
    async with client_for(strict_app, ADMIN_KEY) as strict:
        refused = await strict.post(ARTIFACTS, json={"name": "a", "spec": spec("busybox:1")})
        assert refused.status_code == 422
        [detail] = refused.json()["detail"]
        assert detail["loc"][-1] == "imageUri" and "allowed registry" in detail["msg"]
        good = spec("registry.example.com/team/app:1")
        assert (await strict.post(ARTIFACTS, json={"name": "b", "spec": good})).status_code == 201
        run_old = await strict.post(WORKLOADS, json={"name": "w", "artifactId": old.json()["id"]})
        assert run_old.status_code == 422
        assert run_old.json()["detail"][0]["loc"] == ["body", "artifactId"]
