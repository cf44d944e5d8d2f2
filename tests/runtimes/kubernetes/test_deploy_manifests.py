"""deploy/kubernetes: every manifest validates; the pieces agree with each other and the code.

The base is checked file by file; both overlays are rendered by `kubectl kustomize` (the
kubectl that Debian's machines here carry) and every rendered object is validated against the
official schemas of the oldest and newest Kubernetes versions we support.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from config.settings import Settings
from runtimes.kubernetes.watch import Watches
from services.worker_health import STALE_AFTER_SECONDS

KUBERNETES = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes"
DEPLOY = KUBERNETES / "base"
OVERLAYS = ["dev", "production"]
# Newest: the newest schema kubernetes-validate ships; oldest: the oldest we support.
K8S_VERSIONS = [kubernetes_validate.latest_version(), "1.30"]
IMAGE = "workload-api:0.1.0"
PROCESSES = ["wapi-api", "wapi-gateway", "wapi-worker"]


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
        "ConfigMap", "Deployment", "Job", "Namespace", "NetworkPolicy", "PodDisruptionBudget",
        "Role", "RoleBinding", "Service", "ServiceAccount",
    ]  # fmt: skip
    # No Secret in the base: a GitOps sync must never reset real values to placeholders.


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
    # Readiness survives a database blip; the dependencies are checked once, at startup, with
    # minutes for a migration, so the liveness budget never kills a slow start.
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/readyz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
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
    processes = {e["name"]: e.get("value") for e in container["env"]}["WAPI_GATEWAY_PROCESSES"]
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


def test_the_worker_is_probed_on_its_metrics_port() -> None:
    """The probes ask what services/worker_health.py serves, on the port the worker's
    settings open, on an address the kubelet can reach."""
    [container] = find("Deployment", "wapi-worker")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    port = Settings.model_validate({"worker_metrics_port": env["WAPI_WORKER_METRICS_PORT"]})
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [
        ("metrics", port.worker_metrics_port)
    ]
    assert find("ConfigMap", "wapi-config")["data"]["WAPI_API_HOST"] == "0.0.0.0"
    probes = {kind: container[kind]["httpGet"] for kind in PROBES}
    assert probes == {
        "startupProbe": {"path": "/livez", "port": "metrics"},
        "livenessProbe": {"path": "/livez", "port": "metrics"},
        "readinessProbe": {"path": "/readyz", "port": "metrics"},
    }
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # connect retries
    liveness = container["livenessProbe"]
    budget = liveness["periodSeconds"] * liveness["failureThreshold"]
    assert budget + STALE_AFTER_SECONDS < 120  # a wedged loop is restarted within 2 minutes


PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
KNOWN = {f"WAPI_{name.upper()}" for name in Settings.model_fields}


def test_settings_keys_are_real_settings() -> None:
    config = find("ConfigMap", "wapi-config")["data"]
    assert set(config) <= KNOWN  # a typo would be ignored silently at runtime
    assert config["WAPI_RUNTIME"] == "kubernetes"
    Settings.model_validate({k.removeprefix("WAPI_").lower(): v for k, v in config.items()})
    assert config["WAPI_API_HOST"] == "0.0.0.0"  # a pod must listen beyond loopback
    dev_secret = rendered("dev")["Secret", "wapi-secrets"]["data"]
    assert {"WAPI_BOOTSTRAP_ADMIN_KEY", "WAPI_SECRETS_KEY"} == set(dev_secret)


def pod_specs() -> dict[str, dict[str, Any]]:
    specs = {name: find("Deployment", name)["spec"]["template"]["spec"] for name in PROCESSES}
    specs["wapi-migrate"] = find("Job", "wapi-migrate")["spec"]["template"]["spec"]
    return specs


def test_every_process_reads_the_database_in_parts_from_an_existing_secret() -> None:
    """Operator-made Secrets (host, port, dbname, username, password) work as they are."""
    expected = {
        "WAPI_DATABASE_HOST": "host",
        "WAPI_DATABASE_PORT": "port",
        "WAPI_DATABASE_NAME": "dbname",
        "WAPI_DATABASE_USER": "username",
        "WAPI_DATABASE_PASSWORD": "password",
    }
    for name, pod in pod_specs().items():
        [container] = pod["containers"]
        refs = {
            item["name"]: item["valueFrom"]["secretKeyRef"]
            for item in container["env"]
            if "valueFrom" in item
        }
        assert {k: (v["name"], v["key"]) for k, v in refs.items()} == {
            k: ("wapi-database", v) for k, v in expected.items()
        }, name
        assert {item["name"] for item in container["env"]} <= KNOWN, name
        sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
        assert sources == {"wapi-config", "wapi-secrets"}, name


def test_the_database_parts_make_the_url_the_catalog_uses() -> None:
    settings = Settings(
        database_host="wapi-rw.db.svc",
        database_name="wapi",
        database_user="app",
        database_password="p@ss:w/rd",
    )
    assert (
        settings.catalog_url == "postgresql+asyncpg://app:p%40ss%3Aw%2Frd@wapi-rw.db.svc:5432/wapi"
    )


def test_migrations_run_as_a_job_before_the_api() -> None:
    job = find("Job", "wapi-migrate")
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["wapi", "migrate"] and container["image"] == IMAGE
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"


def test_processes_spread_and_survive_disruptions() -> None:
    for name in PROCESSES:
        deployment = find("Deployment", name)
        pod = deployment["spec"]["template"]["spec"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        [zones] = pod["topologySpreadConstraints"]
        assert zones["topologyKey"] == "topology.kubernetes.io/zone"
        assert zones["labelSelector"]["matchLabels"] == selector
        [spread] = pod["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert spread["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        budget = find("PodDisruptionBudget", name)
        assert budget["spec"]["selector"]["matchLabels"] == selector
        assert budget["spec"]["maxUnavailable"] == 1
    for name in ("wapi-api", "wapi-gateway"):  # the two that take connections
        [container] = find("Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"


@cache
def rendered(overlay: str) -> dict[tuple[str, str], dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (kustomize v5) is missing; Debian's kubernetes-client is too old")
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_and_validates(overlay: str, version: str) -> None:
    objects = rendered(overlay)
    assert len(objects) > 20
    for (kind, name), doc in objects.items():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {kind}/{name}: {exc.message}")


def test_the_overlays_differ_where_they_should() -> None:
    dev, production = rendered("dev"), rendered("production")
    for name in PROCESSES:
        assert dev["Deployment", name]["spec"]["replicas"] == 1
        assert production["Deployment", name]["spec"]["replicas"] == 3
    assert not [key for key in production if key[0] == "Secret"]  # existingSecret style
    assert {("Secret", "wapi-secrets"), ("Secret", "wapi-database")} <= set(dev)
    [container] = production["Deployment", "wapi-api"]["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith("/workload-api:0.1.0")


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
    for resource in ("deployments", "services", "secrets", "configmaps"):
        assert {"create", "get", "list", "patch", "delete"} <= granted[resource], resource
    assert {"get", "list"} <= granted["pods"] and "create" not in granted["pods"]
    assert granted["pods/log"] == {"get"}
    assert {"get", "list"} <= granted["endpointslices"]
    for field in dataclasses.fields(Watches):  # what each worker watches
        resource = field.name.replace("_", "")
        assert {"list", "watch"} <= granted[resource], resource


def test_the_api_only_reads() -> None:
    granted = rules("wapi-pod-reader")
    assert all(verbs <= {"get", "list", "watch"} for verbs in granted.values())
    assert "secrets" not in granted
    # The autoscaler runs in the API and reads the metrics API for CPU policies.
    assert any(
        rule["apiGroups"] == ["metrics.k8s.io"] and "list" in rule["verbs"]
        for rule in find("Role", "wapi-pod-reader")["rules"]
        if "pods" in rule["resources"]
    )


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
