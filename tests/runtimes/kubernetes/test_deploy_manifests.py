"""deploy/kubernetes: every manifest validates; the pieces agree with each other and the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from config.settings import Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes"
K8S_VERSIONS = [kubernetes_validate.latest_version(), "1.30"]
IMAGE = "workload-api:0.1.0"


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def find(kind: str, name: str) -> dict[str, Any]:
    return next(d for _, d in documents() if d["kind"] == kind and d["metadata"]["name"] == name)


def test_there_is_something_to_validate() -> None:
    kinds = sorted({doc["kind"] for _, doc in documents()})
    assert kinds == [
        "ConfigMap", "Deployment", "Namespace", "NetworkPolicy", "PodDisruptionBudget", "Role",
        "RoleBinding", "Secret", "Service", "ServiceAccount",
    ]  # fmt: skip


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_deploy_manifest_validates(version: str) -> None:
    for filename, doc in documents():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{filename}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def test_kustomization_lists_every_file() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    files = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_api_deployment() -> None:
    api = find("Deployment", "wapi-api")
    assert api["spec"]["replicas"] >= 2
    pod = api["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "wapi-api"
    [container] = pod["containers"]
    assert container["image"] == IMAGE and container["command"] == ["wapi", "api"]
    assert container["ports"][0]["containerPort"] == 8080
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = find("Service", "wapi-api")
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]


def test_gateway_deployment() -> None:
    """The invoke gateway runs apart from the management API, as its own Deployment and
    Service, on the port the settings give it, with no access to the Kubernetes API."""
    gateway = find("Deployment", "wapi-gateway")
    assert gateway["spec"]["replicas"] >= 2
    pod = gateway["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "wapi-gateway" and not pod["automountServiceAccountToken"]
    [container] = pod["containers"]
    assert container["image"] == IMAGE and container["command"] == ["wapi", "gateway"]
    config = find("ConfigMap", "wapi-config")["data"]
    assert container["ports"][0]["containerPort"] == int(config["WAPI_GATEWAY_PORT"])
    assert config["WAPI_GATEWAY_HOST"] == "0.0.0.0"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == {"wapi-config", "wapi-secrets"}
    processes = {e["name"]: e["value"] for e in container["env"]}["WAPI_GATEWAY_PROCESSES"]
    Settings.model_validate({"gateway_processes": processes})
    service = find("Service", "wapi-gateway")
    assert service["spec"]["selector"] == gateway["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_worker_deployment() -> None:
    pod = find("Deployment", "wapi-worker")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "wapi-worker"
    [container] = pod["containers"]
    assert container["image"] == IMAGE and container["command"] == ["wapi", "worker"]
    sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == {"wapi-config", "wapi-secrets"}


def test_settings_keys_are_real_settings() -> None:
    config = find("ConfigMap", "wapi-config")["data"]
    secret = find("Secret", "wapi-secrets")["stringData"]
    known = {f"WAPI_{name.upper()}" for name in Settings.model_fields}
    assert set(config) | set(secret) <= known  # a typo would be ignored silently at runtime
    assert config["WAPI_RUNTIME"] == "kubernetes"
    Settings.model_validate({k.removeprefix("WAPI_").lower(): v for k, v in config.items()})
    assert config["WAPI_API_HOST"] == "0.0.0.0"  # a pod must listen beyond loopback
    assert {"WAPI_DATABASE_URL", "WAPI_BOOTSTRAP_ADMIN_KEY"} <= set(secret)


def rules(role: str) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {}
    for rule in find("Role", role)["rules"]:
        for resource in rule["resources"]:
            granted.setdefault(resource, set()).update(rule["verbs"])
    return granted


def test_the_worker_may_do_what_the_runtime_does() -> None:
    workloads_ns = find("ConfigMap", "wapi-config")["data"]["WAPI_KUBERNETES_NAMESPACE"]
    binding = find("RoleBinding", "wapi-runtime")
    assert binding["metadata"]["namespace"] == workloads_ns
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "wapi-worker", "namespace": "workload-api"}
    ]
    granted = rules("wapi-runtime")
    for resource in ("deployments", "services", "secrets"):
        assert {"create", "get", "list", "patch", "delete"} <= granted[resource], resource
    assert {"get", "list"} <= granted["pods"] and "create" not in granted["pods"]
    assert granted["pods/log"] == {"get"}


def test_the_api_only_reads() -> None:
    granted = rules("wapi-pod-reader")
    assert all(verbs <= {"get", "list", "watch"} for verbs in granted.values())
    assert "secrets" not in granted


def policies(namespace: str) -> list[dict[str, Any]]:
    return [
        doc
        for _, doc in documents()
        if doc["kind"] == "NetworkPolicy" and doc["metadata"]["namespace"] == namespace
    ]


def test_workload_pods_reach_the_internet_and_each_other_but_not_the_control_plane() -> None:
    workloads_ns = find("ConfigMap", "wapi-config")["data"]["WAPI_KUBERNETES_NAMESPACE"]
    [egress] = [p for p in policies(workloads_ns) if "Egress" in p["spec"]["policyTypes"]]
    assert egress["spec"]["podSelector"] == {}  # every pod of the namespace
    peers = [peer for rule in egress["spec"]["egress"] for peer in rule["to"]]
    # No peer names another namespace's pods but DNS, and none is the control plane's.
    for peer in peers:
        namespaces = peer.get("namespaceSelector", {}).get("matchLabels", {})
        assert namespaces in ({}, {"kubernetes.io/metadata.name": "kube-system"}), peer
        if namespaces:
            assert peer["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    [internet] = [peer["ipBlock"] for peer in peers if "ipBlock" in peer]
    assert internet["cidr"] == "0.0.0.0/0"
    private = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}
    assert private <= set(internet["except"])  # pods, services, nodes, cloud metadata
    [dns] = [rule for rule in egress["spec"]["egress"] if "ports" in rule]
    assert {port["port"] for port in dns["ports"]} == {53}


def test_only_the_control_plane_and_workloads_call_workload_pods() -> None:
    workloads_ns = find("ConfigMap", "wapi-config")["data"]["WAPI_KUBERNETES_NAMESPACE"]
    [ingress] = [p for p in policies(workloads_ns) if "Ingress" in p["spec"]["policyTypes"]]
    [rule] = ingress["spec"]["ingress"]
    control_plane = find("Deployment", "wapi-api")["metadata"]["namespace"]
    sources = [peer.get("namespaceSelector", {}).get("matchLabels") for peer in rule["from"]]
    assert sources == [{"kubernetes.io/metadata.name": control_plane}, None]
    api_labels = find("Deployment", "wapi-api")["spec"]["template"]["metadata"]["labels"]
    assert rule["from"][0]["podSelector"]["matchLabels"].items() <= api_labels.items()


def test_workers_take_no_connections() -> None:
    [policy] = [
        p for p in policies("workload-api") if p["metadata"]["name"] == "wapi-worker-ingress"
    ]
    worker = find("Deployment", "wapi-worker")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= worker.items()
    assert policy["spec"]["ingress"] == []
