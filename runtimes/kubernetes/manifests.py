"""RunPlan -> Kubernetes manifests, as plain dicts. Pure functions: no I/O, no clients.

Per workload one parent, the ConfigMap `wapi-W` (the "anchor"), owns everything else through
ownerReferences, so deleting it lets the garbage collector remove the rest. Under it: one
Deployment per container group (all containers of the group share a pod, so sidecars reach
the primary on localhost), one Service per group with a port (`wapi-W` for the entry group,
`wapi-W-<group>` for the others: in-workload discovery), and an immutable Secret named by a
hash of its content holding the resolved values of secret environment variables, which
containers read via `secretKeyRef`, so no secret value is ever written into a pod spec and a
pod of an older generation that restarts mid-rollout still reads the values it started with.

Every container is confined as on the local runtime: no capabilities, no privilege
escalation, the runtime's default seccomp profile, CPU and memory limits (the pids limit is
the kubelet's `podPidsLimit`), optionally a read-only root with an emptyDir on /tmp. The
NetworkPolicies in deploy/kubernetes keep workload pods away from the control plane.

(Over 300 lines: every object the runtime writes is built here, so one file shows all of it.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from models.plan import ContainerPlan, GroupPlan, RunPlan
from runtimes.base import LABEL_GENERATION, LABEL_GROUP, LABEL_MANAGED, LABEL_WORKLOAD
from runtimes.kubernetes import gpu
from runtimes.kubernetes.gpu import GPU_RESOURCE, ClusterOptions
from runtimes.kubernetes.probes import native_probe

ANNOTATION_GENERATION = "workload-api.generation"
ANNOTATION_SPEC_HASH = "workload-api.spec-hash"
LABEL_ROLE = "workload-api.role"  # "anchor" on the parent object, "last-logs" on kept logs
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


def anchor_name(workload_id: str) -> str:
    return object_name(workload_id)


def service_name(workload_id: str, group: str | None = None) -> str:
    """`wapi-W` for the entry group (the gateway's), `wapi-W-<group>` for the others."""
    return object_name(workload_id) if group is None else object_name(workload_id, group)


def secret_name(workload_id: str, data: Mapping[str, str]) -> str:
    """Named by its content: a Secret is immutable, a new content is a new Secret."""
    digest = hashlib.sha256(json.dumps(dict(sorted(data.items()))).encode()).hexdigest()[:10]
    return object_name(workload_id, "secrets", digest)


def secret_key(secret_id: str) -> str:
    """Secret data keys allow [-._a-zA-Z0-9]; ids are hex already, this is a guard."""
    return _INVALID_KEY_CHARS.sub("_", secret_id)


def workload_labels(workload_id: str) -> dict[str, str]:
    return {LABEL_MANAGED: "true", LABEL_WORKLOAD: workload_id}


def group_labels(workload_id: str, group: str) -> dict[str, str]:
    return {**workload_labels(workload_id), LABEL_GROUP: group}


def build_anchor(workload_id: str, namespace: str) -> dict[str, Any]:
    """The workload's one parent object; it holds nothing but its identity."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": anchor_name(workload_id),
            "namespace": namespace,
            "labels": {**workload_labels(workload_id), LABEL_ROLE: "anchor"},
        },
        "data": {"workloadId": workload_id},
    }


def kept_logs_name(workload_id: str) -> str:
    return object_name(workload_id, "last-logs")


def build_kept_logs(workload_id: str, namespace: str, texts: Mapping[str, str]) -> dict[str, Any]:
    """The last log lines of stopped pods, by `<pod>.<container>` (valid ConfigMap keys)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": kept_logs_name(workload_id),
            "namespace": namespace,
            "labels": {**workload_labels(workload_id), LABEL_ROLE: "last-logs"},
        },
        "data": dict(sorted(texts.items())),
    }


def owner_reference(anchor: Mapping[str, Any]) -> dict[str, Any]:
    meta = anchor["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
    }


def manifests(
    plan: RunPlan,
    namespace: str,
    secrets: Mapping[str, str],
    *,
    owner: Mapping[str, Any] | None = None,
    options: ClusterOptions | None = None,
) -> list[dict[str, Any]]:
    """Everything one generation needs, in the order to apply it (Secret before its users);
    `owner` is the live anchor, whose uid the ownerReferences name."""
    options = options or ClusterOptions()
    objects: list[dict[str, Any]] = []
    secret = build_secret(plan, namespace, secrets)
    if secret is not None:
        objects.append(secret)
    secret_ref = secret["metadata"]["name"] if secret else None
    objects.extend(
        build_deployment(plan, group, namespace, secret_ref, options) for group in plan.groups
    )
    objects.extend(build_services(plan, namespace))
    if owner is not None:
        for manifest in objects:
            manifest["metadata"]["ownerReferences"] = [owner_reference(owner)]
    return [with_spec_hash(manifest) for manifest in objects]


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
    data = dict(sorted(data.items()))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(secret_name(plan.workload_id, data), namespace, plan, None),
        "type": "Opaque",
        "immutable": True,
        "data": data,
    }


def build_deployment(
    plan: RunPlan,
    group: GroupPlan,
    namespace: str,
    secret_ref: str | None = None,
    options: ClusterOptions | None = None,
) -> dict[str, Any]:
    generation = str(plan.generation)
    selector = group_labels(plan.workload_id, group.name)
    gpu_settings = gpu.pod_settings(group, options or ClusterOptions())
    pod_spec: dict[str, Any] = {
        "containers": [
            _container(container, secret_ref, shm="volumes" in gpu_settings)
            for container in group.containers
        ],
        # Workloads are user code: no API token, and no injected *_SERVICE_HOST variables.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        **gpu_settings,
    }
    if any(container.read_only_root for container in group.containers):
        tmp = {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}}
        pod_spec["volumes"] = [tmp, *pod_spec.get("volumes", [])]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            deployment_name(plan.workload_id, group.name), namespace, plan, group
        ),
        "spec": {
            "replicas": group.replicas,
            "revisionHistoryLimit": 3,
            "strategy": gpu.rollout_strategy(group),
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


def build_services(plan: RunPlan, namespace: str) -> list[dict[str, Any]]:
    """A ClusterIP Service per group with a port; the gateway routes to the entry group's
    ready endpoints (EndpointSlices), the groups find each other by these names."""
    services = []
    for position, group in enumerate(plan.groups):
        port = group.primary.port
        if port is None:
            continue
        name = service_name(plan.workload_id, None if position == 0 else group.name)
        services.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": _metadata(name, namespace, plan, group),
                "spec": {
                    "type": "ClusterIP",
                    "selector": group_labels(plan.workload_id, group.name),
                    "ports": [
                        {"name": PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"}
                    ],
                },
            }
        )
    return services


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


def _container(container: ContainerPlan, secret_ref: str | None, *, shm: bool) -> dict[str, Any]:
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
    mounts = [{"name": TMP_VOLUME, "mountPath": "/tmp"}] if container.read_only_root else []
    if shm:
        mounts.append(gpu.shm_mount())
    if mounts:
        spec["volumeMounts"] = mounts
    if container.entrypoint is not None:
        spec["command"] = list(container.entrypoint)  # Kubernetes' command replaces ENTRYPOINT
    if container.command is not None:
        spec["args"] = list(container.command)  # and its args replace CMD
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in container.env.items()]
    env += [
        {
            "name": item.name,
            "valueFrom": {"secretKeyRef": {"name": secret_ref, "key": secret_key(item.secret_id)}},
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
