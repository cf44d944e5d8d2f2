"""RunPlan -> Kubernetes manifests, as plain dicts. Pure functions: no I/O, no clients.

One Deployment per container group (all containers of the group share a pod, so sidecars
reach the primary on localhost), one Service for the entry group, and one Secret holding the
resolved values of secret environment variables, which containers read via `secretKeyRef`,
so no secret value is ever written into a pod spec.

Every container is confined as on the local runtime: no capabilities, no privilege
escalation, the runtime's default seccomp profile, CPU and memory limits (the pids limit is
the kubelet's `podPidsLimit`), optionally a read-only root with an emptyDir on /tmp. The
NetworkPolicies in deploy/kubernetes keep workload pods away from the control plane.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from models.plan import ContainerPlan, GroupPlan, RunPlan
from models.spec import Probe
from runtimes.base import LABEL_GENERATION, LABEL_GROUP, LABEL_MANAGED, LABEL_WORKLOAD

ANNOTATION_GENERATION = "workload-api.generation"
ANNOTATION_SPEC_HASH = "workload-api.spec-hash"
GPU_RESOURCE = "nvidia.com/gpu"
PORT_NAME = "http"
TMP_VOLUME = "tmp"
_NAME_LIMIT = 63  # DNS-1123 label: Service names, and short enough for readable pod names
_INVALID_NAME_CHARS = re.compile(r"[^a-z0-9-]+")
_INVALID_KEY_CHARS = re.compile(r"[^-._a-zA-Z0-9]+")


def object_name(*parts: str) -> str:
    """`wapi-<parts>`, lower-case DNS label; over-long names keep a hash suffix to stay unique."""
    name = _INVALID_NAME_CHARS.sub("-", "-".join(("wapi", *parts)).lower()).strip("-")
    if len(name) <= _NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: _NAME_LIMIT - 9].rstrip('-')}-{digest}"


def deployment_name(workload_id: str, group: str) -> str:
    return object_name(workload_id, group)


def service_name(workload_id: str) -> str:
    return object_name(workload_id)


def secret_name(workload_id: str) -> str:
    return object_name(workload_id, "secrets")


def secret_key(secret_id: str) -> str:
    """Secret data keys allow [-._a-zA-Z0-9]; ids are hex already, this is a guard."""
    return _INVALID_KEY_CHARS.sub("_", secret_id)


def workload_labels(workload_id: str) -> dict[str, str]:
    return {LABEL_MANAGED: "true", LABEL_WORKLOAD: workload_id}


def group_labels(workload_id: str, group: str) -> dict[str, str]:
    return {**workload_labels(workload_id), LABEL_GROUP: group}


def entry_address(plan: RunPlan, namespace: str) -> str | None:
    """Where the gateway reaches the entry group from inside the cluster."""
    port = plan.groups[0].primary.port
    if port is None:
        return None
    return f"{service_name(plan.workload_id)}.{namespace}.svc:{port}"


def manifests(plan: RunPlan, namespace: str, secrets: Mapping[str, str]) -> list[dict[str, Any]]:
    """Everything one generation needs, in the order to apply it (Secret before its users)."""
    objects: list[dict[str, Any]] = []
    secret = build_secret(plan, namespace, secrets)
    if secret is not None:
        objects.append(secret)
    objects.extend(build_deployment(plan, group, namespace) for group in plan.groups)
    service = build_service(plan, namespace)
    if service is not None:
        objects.append(service)
    return objects


def build_secret(
    plan: RunPlan, namespace: str, secrets: Mapping[str, str]
) -> dict[str, Any] | None:
    wanted = {
        env.secret_id: env.name
        for group in plan.groups
        for container in group.containers
        for env in container.secret_env
    }
    if not wanted:
        return None
    missing = sorted(f"{name} (secret {sid})" for sid, name in wanted.items() if sid not in secrets)
    if missing:
        raise ValueError(f"secret values were not resolved for: {', '.join(missing)}")
    data = {secret_key(sid): base64.b64encode(secrets[sid].encode()).decode() for sid in wanted}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(secret_name(plan.workload_id), namespace, plan, None),
        "type": "Opaque",
        "data": dict(sorted(data.items())),
    }


def build_deployment(plan: RunPlan, group: GroupPlan, namespace: str) -> dict[str, Any]:
    generation = str(plan.generation)
    selector = group_labels(plan.workload_id, group.name)
    gpu = any(container.gpu_count > 0 for container in group.containers)
    pod_spec: dict[str, Any] = {
        "containers": [_container(plan, container) for container in group.containers],
        # Workloads are user code: no API token, and no injected *_SERVICE_HOST variables.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        # Always present (maybe empty) so a merge patch also clears it when GPUs go away.
        "tolerations": (
            [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}] if gpu else []
        ),
    }
    if any(container.read_only_root for container in group.containers):
        pod_spec["volumes"] = [{"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}}]
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            deployment_name(plan.workload_id, group.name), namespace, plan, group
        ),
        "spec": {
            "replicas": group.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": {**selector, LABEL_GENERATION: generation},
                    # A new generation changes the pod template, so Kubernetes rolls it out.
                    "annotations": {ANNOTATION_GENERATION: generation},
                },
                "spec": pod_spec,
            },
        },
    }
    return with_spec_hash(manifest)


def build_service(plan: RunPlan, namespace: str) -> dict[str, Any] | None:
    entry = plan.groups[0]
    port = entry.primary.port
    if port is None:
        return None
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(service_name(plan.workload_id), namespace, plan, entry),
        "spec": {
            "type": "ClusterIP",
            "selector": group_labels(plan.workload_id, entry.name),
            "ports": [{"name": PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }
    return with_spec_hash(manifest)


def with_spec_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    """Stamp a hash of the manifest, so a retried apply can tell "already so" cheaply."""
    annotations = manifest["metadata"].setdefault("annotations", {})
    annotations.pop(ANNOTATION_SPEC_HASH, None)
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    annotations[ANNOTATION_SPEC_HASH] = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return manifest


def _metadata(name: str, namespace: str, plan: RunPlan, group: GroupPlan | None) -> dict[str, Any]:
    labels = workload_labels(plan.workload_id)
    if group is not None:
        labels[LABEL_GROUP] = group.name
    labels[LABEL_GENERATION] = str(plan.generation)
    return {"name": name, "namespace": namespace, "labels": labels}


def _container(plan: RunPlan, container: ContainerPlan) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": container.name,
        "image": container.image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": container.read_only_root,
        },
    }
    if container.read_only_root:
        spec["volumeMounts"] = [{"name": TMP_VOLUME, "mountPath": "/tmp"}]
    if container.entrypoint is not None:
        spec["command"] = list(container.entrypoint)  # Kubernetes' command replaces ENTRYPOINT
    if container.command is not None:
        spec["args"] = list(container.command)  # and its args replace CMD
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in container.env.items()]
    ref = secret_name(plan.workload_id)
    env += [
        {
            "name": item.name,
            "valueFrom": {"secretKeyRef": {"name": ref, "key": secret_key(item.secret_id)}},
        }
        for item in container.secret_env
    ]
    if env:
        spec["env"] = env
    if container.port is not None:
        spec["ports"] = [{"name": PORT_NAME, "containerPort": container.port, "protocol": "TCP"}]
    resources = _resources(container)
    if resources:
        spec["resources"] = {"requests": resources, "limits": dict(resources)}
    probes = {
        "readinessProbe": container.readiness_probe,
        "livenessProbe": container.liveness_probe,
        "startupProbe": container.startup_probe,
    }
    for key, probe in probes.items():
        if probe is not None:
            spec[key] = native_probe(probe, container, liveness_like=key != "readinessProbe")
    return spec


def _resources(container: ContainerPlan) -> dict[str, str]:
    # requests == limits: the bundle is what the workload gets (Guaranteed QoS), no bursting.
    resources: dict[str, str] = {}
    if container.cpu is not None:
        resources["cpu"] = f"{max(1, round(container.cpu * 1000))}m"
    if container.memory_bytes is not None:
        resources["memory"] = memory_quantity(container.memory_bytes)
    if container.gpu_count > 0:
        resources[GPU_RESOURCE] = str(container.gpu_count)
    return resources


def memory_quantity(value: int) -> str:
    for suffix, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value % size == 0:
            return f"{value // size}{suffix}"
    return str(value)


def native_probe(probe: Probe, container: ContainerPlan, *, liveness_like: bool) -> dict[str, Any]:
    """Our probe -> a Kubernetes probe; the kubelet runs it, not us."""
    result: dict[str, Any] = {}
    if probe.path is not None:
        action: dict[str, Any] = {
            "path": probe.path,
            "port": _probe_port(probe.port, container),
            "scheme": probe.scheme,
        }
        if probe.http_headers:
            action["httpHeaders"] = [{"name": k, "value": v} for k, v in probe.http_headers.items()]
        result["httpGet"] = action
    elif probe.tcp_socket is not None:
        result["tcpSocket"] = {"port": _probe_port(probe.tcp_socket.port, container)}
    elif probe.exec_ is not None:
        result["exec"] = {"command": list(probe.exec_.command)}
    else:
        raise ValueError(f"container '{container.name}': probe has no action")
    result.update(
        initialDelaySeconds=probe.initial_delay_seconds,
        periodSeconds=probe.period_seconds,
        timeoutSeconds=probe.timeout_seconds,
        # Kubernetes requires 1 for liveness and startup probes (the spec rules enforce it too).
        successThreshold=1 if liveness_like else probe.success_threshold,
        failureThreshold=probe.failure_threshold,
    )
    return result


def _probe_port(port: int | None, container: ContainerPlan) -> int:
    if port is not None:
        return port
    if container.port is None:
        raise ValueError(
            f"container '{container.name}': probe needs a port; the container has none"
        )
    return container.port
