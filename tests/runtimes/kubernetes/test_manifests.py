"""RunPlan -> manifests: valid against the official schemas, and saying what the plan says."""

from __future__ import annotations

import base64
import json
from typing import Any

import kubernetes_validate
import pytest

from runtimes.base import LABEL_GENERATION, LABEL_GROUP, LABEL_MANAGED, LABEL_WORKLOAD
from runtimes.kubernetes import manifests
from tests.runtimes.kubernetes.cluster import (
    NAMESPACE,
    SECRET_ID,
    SECRET_VALUE,
    WID,
    graph_plan,
    single_plan,
)

# The newest schema shipped with kubernetes-validate and an older, still common, release.
K8S_VERSIONS = [kubernetes_validate.latest_version(), "1.30"]
SECRETS = {SECRET_ID: SECRET_VALUE}


def by_kind(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        result.setdefault(obj["kind"], []).append(obj)
    return result


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("plan", [single_plan(), graph_plan()], ids=["single", "graph"])
def test_every_manifest_validates_strictly(plan: Any, version: str) -> None:
    objects = manifests.manifests(plan, NAMESPACE, SECRETS)
    assert objects
    for obj in objects:
        # strict: unknown fields (a typo such as "imagePullPolicyy") fail too.
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [("container", "imagePullPolicyy", "IfNotPresent"), ("spec", "replicas", "two")],
)
def test_validation_would_catch_a_broken_manifest(where: str, key: str, value: str) -> None:
    deployment = manifests.build_deployment(single_plan(), single_plan().groups[0], NAMESPACE)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    (container if where == "container" else deployment["spec"])[key] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


def test_single_container_deployment_fields() -> None:
    objects = by_kind(manifests.manifests(single_plan(replicas=3), NAMESPACE, SECRETS))
    assert sorted(objects) == ["Deployment", "Secret", "Service"]
    [deployment] = objects["Deployment"]
    assert deployment["metadata"]["name"] == f"wapi-{WID}-web"
    assert deployment["metadata"]["namespace"] == NAMESPACE
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    selector = {LABEL_MANAGED: "true", LABEL_WORKLOAD: WID, LABEL_GROUP: "web"}
    assert spec["selector"]["matchLabels"] == selector  # never the generation: it is immutable
    template = spec["template"]
    assert template["metadata"]["labels"] == {**selector, LABEL_GENERATION: "1"}
    assert template["metadata"]["annotations"][manifests.ANNOTATION_GENERATION] == "1"
    [container] = template["spec"]["containers"]
    assert container["image"] == "registry.example.com/team/agent:1.4"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["/bin/agent"]  # our entrypoint
    assert container["args"] == ["serve", "--port", "8080"]  # our command
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["env"] == [
        {"name": "LOG_LEVEL", "value": "info"},
        {
            "name": "API_TOKEN",
            "valueFrom": {
                "secretKeyRef": {"name": f"wapi-{WID}-secrets", "key": SECRET_ID},
            },
        },
    ]
    expected = {"cpu": "500m", "memory": "512Mi", "nvidia.com/gpu": "1"}
    assert container["resources"] == {"requests": expected, "limits": expected}
    assert template["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert template["spec"]["automountServiceAccountToken"] is False


def test_probes_become_native_probes() -> None:
    [deployment] = by_kind(manifests.manifests(single_plan(), NAMESPACE, SECRETS))["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"] == {
        "httpGet": {
            "path": "/ready",
            "port": 8080,  # no probe port: the container's
            "scheme": "HTTP",
            "httpHeaders": [{"name": "X-Probe", "value": "yes"}],
        },
        "initialDelaySeconds": 0,
        "periodSeconds": 5,
        "timeoutSeconds": 1,
        "successThreshold": 2,
        "failureThreshold": 3,
    }
    assert container["livenessProbe"]["tcpSocket"] == {"port": 8080}
    assert container["livenessProbe"]["failureThreshold"] == 4
    assert container["startupProbe"]["exec"] == {"command": ["cat", "/tmp/started"]}
    assert container["startupProbe"]["successThreshold"] == 1


def test_secret_values_live_only_in_the_secret() -> None:
    objects = by_kind(manifests.manifests(single_plan(), NAMESPACE, SECRETS))
    [secret] = objects["Secret"]
    assert secret["metadata"]["name"] == f"wapi-{WID}-secrets"
    assert base64.b64decode(secret["data"][SECRET_ID]).decode() == SECRET_VALUE
    for kind in ("Deployment", "Service"):
        text = json.dumps(objects[kind])
        assert SECRET_VALUE not in text
        assert base64.b64encode(SECRET_VALUE.encode()).decode() not in text


def test_unresolved_secret_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match=f"API_TOKEN \\(secret {SECRET_ID}\\)"):
        manifests.manifests(single_plan(), NAMESPACE, {})


def test_no_secret_env_means_no_secret_object() -> None:
    objects = by_kind(manifests.manifests(single_plan(secret_env=[]), NAMESPACE, {}))
    assert "Secret" not in objects


def test_multi_container_group_shares_one_pod() -> None:
    objects = by_kind(manifests.manifests(graph_plan(), NAMESPACE, SECRETS))
    web = next(d for d in objects["Deployment"] if d["metadata"]["name"].endswith("-web"))
    containers = web["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["main", "log-shipper"]
    shipper = containers[1]
    assert "ports" not in shipper and "resources" not in shipper
    assert shipper["args"] == ["--target", "http://localhost:8080"]
    assert web["spec"]["template"]["spec"]["tolerations"] == []  # no GPU in this group


def test_graph_has_one_deployment_per_group_and_a_service_for_the_entry() -> None:
    objects = by_kind(manifests.manifests(graph_plan(), NAMESPACE, SECRETS))
    names = {d["metadata"]["name"]: d for d in objects["Deployment"]}
    assert sorted(names) == [f"wapi-{WID}-model", f"wapi-{WID}-web"]
    model = names[f"wapi-{WID}-model"]
    assert model["spec"]["replicas"] == 2
    limits = model["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"nvidia.com/gpu": "2"}
    [service] = objects["Service"]
    assert service["metadata"]["name"] == f"wapi-{WID}"
    assert service["spec"]["selector"] == {
        LABEL_MANAGED: "true",
        LABEL_WORKLOAD: WID,
        LABEL_GROUP: "web",  # the entry (first) group only
    }
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"}
    ]
    assert manifests.entry_address(graph_plan(), NAMESPACE) == f"wapi-{WID}.{NAMESPACE}.svc:8080"


def test_a_new_generation_changes_the_pod_template_and_the_hash() -> None:
    first = manifests.build_deployment(single_plan(1), single_plan(1).groups[0], NAMESPACE)
    second = manifests.build_deployment(single_plan(2), single_plan(2).groups[0], NAMESPACE)
    assert first["spec"]["template"] != second["spec"]["template"]
    hash_key = manifests.ANNOTATION_SPEC_HASH
    assert first["metadata"]["annotations"][hash_key] != second["metadata"]["annotations"][hash_key]
    again = manifests.build_deployment(single_plan(1), single_plan(1).groups[0], NAMESPACE)
    assert again == first  # deterministic: a retry computes the same object


def test_long_names_stay_valid_and_distinct() -> None:
    long_group = "g" * 63
    a = manifests.deployment_name(WID, long_group)
    b = manifests.deployment_name(WID, long_group[:-1] + "h")
    assert len(a) <= 63 and len(b) <= 63 and a != b
    assert a.startswith("wapi-") and a[-1].isalnum()


@pytest.mark.parametrize("read_only", [False, True])
def test_every_container_is_confined(read_only: bool) -> None:
    """The intent of the local runtime's confinement: no capabilities, no privilege gain,
    the default seccomp profile, limits on every container (sidecars too); a read-only root
    gets a scratch /tmp."""
    plan = graph_plan()
    for group in plan.groups:
        for container in group.containers:
            container.read_only_root = read_only
            container.cpu, container.memory_bytes = 0.5, 256 * 2**20
    for deployment in by_kind(manifests.manifests(plan, NAMESPACE, SECRETS))["Deployment"]:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
        assert pod["automountServiceAccountToken"] is False
        assert ("volumes" in pod) is read_only
        for container in pod["containers"]:
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "privileged": False,
                "readOnlyRootFilesystem": read_only,
            }
            limits = container["resources"]["limits"]
            assert limits["cpu"] == "500m" and limits["memory"] == "256Mi"
            mounts = container.get("volumeMounts", [])
            assert mounts == ([{"name": "tmp", "mountPath": "/tmp"}] if read_only else [])
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)
