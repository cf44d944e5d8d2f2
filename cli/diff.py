"""What `apply` compares: artifact content and workload runtimes, reduced to plain data in the
shape the server stores, and a readable line per difference."""

from __future__ import annotations

from typing import Any

from models.autoscaling import Autoscaling
from models.spec import ArtifactSpec, ArtifactType
from models.workloads import GroupRuntime, GroupRuntimePublic, WorkloadRuntime


def artifact_content(description: str, type: ArtifactType, spec: ArtifactSpec) -> dict[str, Any]:
    """What registering a new version or editing a draft changes; the name is the identity."""
    return {
        "description": description,
        "type": type,
        "spec": spec.normalized().model_dump(mode="json", by_alias=True),
    }


def _group(group: GroupRuntime | GroupRuntimePublic) -> dict[str, Any]:
    scaling = group.autoscaling
    if isinstance(scaling, Autoscaling):
        scaling = scaling.hoisted()
    shown: dict[str, Any] = {
        "replicaCount": group.replica_count,
        "resourceBundles": list(group.resource_bundles),
        "containers": [c.model_dump(mode="json", by_alias=True) for c in group.containers],
    }
    if scaling is not None:
        shown["autoscaling"] = {
            "enabled": scaling.enabled,
            "minReplicaCount": scaling.min_replica_count,
            "maxReplicaCount": scaling.max_replica_count,
            "policies": [
                {"scalingMetric": p.scaling_metric, "target": p.target, "priority": p.priority}
                for p in scaling.policies
            ],
        }
        if scaling.enabled:  # the autoscaler owns the count
            del shown["replicaCount"]
    return shown


def runtime_groups(
    current: list[GroupRuntimePublic], desired: WorkloadRuntime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both runtimes by group name; a group the file leaves out gets the server's defaults."""
    now = {group.name: _group(group) for group in current}
    groups = desired.container_groups
    if desired.short_form and len(current) == 1:  # the short form is the one group's
        groups = [desired.as_group(current[0].name)]
    wanted = {group.name: _group(group) for group in groups}
    for name in now.keys() - wanted.keys():
        wanted[name] = _group(GroupRuntime(name=name))
    return now, wanted


def only_replicas_differ(now: dict[str, Any], wanted: dict[str, Any]) -> bool:
    if now.keys() != wanted.keys():
        return False
    strip = {name: {k: v for k, v in g.items() if k != "replicaCount"} for name, g in now.items()}
    return strip == {
        name: {k: v for k, v in g.items() if k != "replicaCount"} for name, g in wanted.items()
    }


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 70 else text[:67] + "..."


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """One line per changed leaf: `spec.containerGroups[0].containers[0].imageUri: 'a' -> 'b'`."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines: list[str] = []
        for key in [*old, *(k for k in new if k not in old)]:
            child = f"{path}.{key}" if path else str(key)
            if key not in new:
                lines.append(f"{child}: removed")
            elif key not in old:
                lines.append(f"{child}: {_show(new[key])} (added)")
            else:
                lines += differences(old[key], new[key], child)
        return lines
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            line
            for index, (a, b) in enumerate(zip(old, new, strict=True))
            for line in differences(a, b, f"{path}[{index}]")
        ]
    return [] if old == new else [f"{path}: {_show(old)} -> {_show(new)}"]
