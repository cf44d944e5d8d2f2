"""The container spec rules and the rules of each artifact type, at their JSON paths."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from models.spec import ArtifactSpec, ArtifactType
from services.errors import InvalidInputError
from services.spec_rules import checked_spec

ROOT = ("body", "spec")


def container(**overrides: Any) -> dict[str, Any]:
    return {"imageUri": "registry.example.com/team/app:1", "port": 8080, **overrides}


def spec(*groups: list[dict[str, Any]]) -> ArtifactSpec:
    return ArtifactSpec.model_validate(
        {"containerGroups": [{"name": f"g{i}", "containers": c} for i, c in enumerate(groups)]}
    )


def problems(
    s: ArtifactSpec, artifact_type: ArtifactType = "generic"
) -> dict[tuple[Any, ...], str]:
    with pytest.raises(InvalidInputError) as caught:
        checked_spec(s, artifact_type, ROOT)
    return {p.loc[2:]: p.msg for p in caught.value.problems}


def test_single_container_is_primary_and_named_main() -> None:
    result = checked_spec(spec([container()]), "generic", ROOT)
    only = result.container_groups[0].containers[0]
    assert only.primary is True and only.name == "main"


def test_sidecars_get_names_and_share_the_primary_network() -> None:
    result = checked_spec(
        spec([container(primary=True), {"imageUri": "busybox", "primary": False}]), "generic", ROOT
    )
    assert [c.name for c in result.container_groups[0].containers] == ["main", "sidecar-1"]


def test_exactly_one_primary_per_group() -> None:
    two = spec([container(primary=True, name="a"), container(primary=True, name="b")])
    assert problems(two)[("containerGroups", 0, "containers")].startswith("exactly one container")
    none = spec([container(primary=False, name="a"), {"imageUri": "busybox", "name": "b"}])
    assert ("containerGroups", 0, "containers") in problems(none)


def test_primary_needs_a_port_and_sidecars_have_none() -> None:
    found = problems(spec([{"imageUri": "busybox"}]))
    assert found[("containerGroups", 0, "containers", 0, "port")].startswith(
        "the primary container needs"
    )
    sidecar_port = spec([container(primary=True), container(name="side", port=9000)])
    assert ("containerGroups", 0, "containers", 1, "port") in problems(sidecar_port)


@pytest.mark.parametrize("port", [80, 1023, 65536])
def test_port_range(port: int) -> None:
    with pytest.raises(ValidationError):
        spec([container(port=port)])


def test_container_names_are_unique() -> None:
    found = problems(
        spec([container(primary=True, name="x"), {"imageUri": "busybox", "name": "x"}])
    )
    assert found[("containerGroups", 0, "containers", 1, "name")] == "duplicate container name 'x'"


@pytest.mark.parametrize(
    "image",
    ["Busybox", "registry:5000/", "a b", "team/app:", "app@sha256:short", ":latest", "x" * 600],
)
def test_bad_image_references(image: str) -> None:
    with pytest.raises(ValidationError) as caught:
        spec([container(imageUri=image)])
    assert caught.value.errors()[0]["loc"][-1] == "imageUri"


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "localhost/test-http:1",
        "registry.example.com:5000/team/app:1.2.3",
        "nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3.3",
        "app@sha256:" + "a" * 64,
        "[::1]:5000/app:v1",
    ],
)
def test_good_image_references(image: str) -> None:
    checked_spec(spec([container(imageUri=image)]), "generic", ROOT)


@pytest.mark.parametrize("name", ["1ABC", "A-B", "", "X Y", "a=b"])
def test_env_var_names(name: str) -> None:
    with pytest.raises(ValidationError):
        spec([container(environmentVars=[{"name": name, "value": "v"}])])


def test_env_var_rules() -> None:
    found = problems(
        spec(
            [
                container(
                    environmentVars=[
                        {"name": "A", "value": "1"},
                        {"name": "A", "value": "2"},
                        {"name": "WORKLOAD_ID", "value": "x"},
                    ]
                )
            ]
        )
    )
    env = ("containerGroups", 0, "containers", 0, "environmentVars")
    assert found[(*env, 1, "name")] == "duplicate environment variable 'A'"
    assert found[(*env, 2, "name")] == "'WORKLOAD_ID' is set by the platform"


def test_probe_defaults_follow_kubernetes() -> None:
    result = checked_spec(spec([container(readinessProbe={"path": "/healthz"})]), "generic", ROOT)
    probe = result.container_groups[0].containers[0].readiness_probe
    assert probe is not None
    assert (probe.scheme, probe.initial_delay_seconds, probe.period_seconds) == ("HTTP", 0, 10)
    assert (probe.timeout_seconds, probe.success_threshold, probe.failure_threshold) == (1, 1, 3)


def test_probe_needs_exactly_one_handler() -> None:
    both = spec([container(livenessProbe={"path": "/h", "tcpSocket": {}})])
    assert ("containerGroups", 0, "containers", 0, "livenessProbe") in problems(both)
    neither = spec([container(livenessProbe={"periodSeconds": 5})])
    assert ("containerGroups", 0, "containers", 0, "livenessProbe") in problems(neither)


def test_tcp_and_exec_probes() -> None:
    result = checked_spec(
        spec(
            [
                container(
                    startupProbe={"tcpSocket": {"port": 8080}},
                    livenessProbe={"exec": {"command": ["cat", "/tmp/alive"]}},
                )
            ]
        ),
        "generic",
        ROOT,
    )
    main = result.container_groups[0].containers[0]
    assert main.startup_probe is not None and main.startup_probe.kind == "tcp"
    assert main.liveness_probe is not None and main.liveness_probe.kind == "exec"


def test_probe_field_limits() -> None:
    for bad in (
        {"path": "healthz"},
        {"path": "/", "scheme": "FTP"},
        {"path": "/", "periodSeconds": 0},
    ):
        with pytest.raises(ValidationError):
            spec([container(readinessProbe=bad)])
    with pytest.raises(ValidationError):
        spec([container(readinessProbe={"path": "/", "httpHeaders": {"bad header": "x"}})])


def test_liveness_success_threshold_must_be_one() -> None:
    found = problems(spec([container(livenessProbe={"path": "/", "successThreshold": 2})]))
    assert found[("containerGroups", 0, "containers", 0, "livenessProbe", "successThreshold")]


def test_sidecar_probe_needs_a_port() -> None:
    found = problems(
        spec([container(primary=True), {"imageUri": "busybox", "readinessProbe": {"path": "/"}}])
    )
    assert ("containerGroups", 0, "containers", 1, "readinessProbe") in found


@pytest.mark.parametrize("artifact_type", ["agent", "model", "nim"])
def test_types_that_need_a_readiness_probe(artifact_type: ArtifactType) -> None:
    found = problems(spec([container()]), artifact_type)
    assert ("containerGroups", 0, "containers", 0, "readinessProbe") in found
    checked_spec(spec([container(readinessProbe={"path": "/ready"})]), artifact_type, ROOT)


def test_graph_needs_several_components() -> None:
    assert ("containerGroups",) in problems(spec([container()]), "graph")
    checked_spec(spec([container()], [container()]), "graph", ROOT)


def test_other_types_have_one_group() -> None:
    assert ("containerGroups",) in problems(spec([container()], [container()]), "generic")


def test_group_names_are_unique() -> None:
    s = ArtifactSpec.model_validate(
        {"containerGroups": [{"name": "a", "containers": [container()]}] * 2}
    )
    assert ("containerGroups", 1, "name") in problems(s, "graph")


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        spec([container(imageURI="typo")])
    assert caught.value.errors()[0]["type"] == "extra_forbidden"
