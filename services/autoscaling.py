"""A container group's autoscaling settings: checked, and stored in one shape.

Clients send the replica bounds on each policy (`minCount`, `maxCount`, the older shape) or on
`autoscaling` (`minReplicaCount`, `maxReplicaCount`); the stored and shown settings carry them
on `autoscaling` only (`Autoscaling.hoisted`).

A group with enabled autoscaling starts with `minReplicaCount` replicas, at least one; from
then on the autoscaler (services/autoscaler.py) sets its count, down to zero if allowed.
"""

from __future__ import annotations

from typing import Any

from models.autoscaling import Autoscaling
from models.workloads import GroupRuntime
from services.errors import FieldProblem, Loc


def normalized_group(group: GroupRuntime, loc: Loc) -> tuple[GroupRuntime, list[FieldProblem]]:
    """`group` with its autoscaling hoisted (and its replica count set from it when enabled),
    and the problems found, each at its JSON path under `loc` (the group's settings)."""
    scaling = group.autoscaling
    if scaling is None:
        return group, []
    stored = scaling.hoisted()
    if not scaling.enabled:
        return group.model_copy(update={"autoscaling": stored}), []
    problems = _problems(scaling, stored, (*loc, "autoscaling"))
    if "replica_count" in group.model_fields_set:
        problems.append(
            FieldProblem(
                (*loc, "replicaCount"),
                "replicaCount and enabled autoscaling exclude each other: give "
                "autoscaling.minReplicaCount and maxReplicaCount, or set autoscaling.enabled "
                "to false",
            )
        )
    replicas = max(stored.min_replica_count or 0, 1)
    return group.model_copy(update={"autoscaling": stored, "replica_count": replicas}), problems


def _problems(given: Autoscaling, stored: Autoscaling, loc: Loc) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    policies = given.policies
    if not policies:
        problems.append(
            FieldProblem(
                (*loc, "policies"),
                "enabled autoscaling needs a policy, e.g. "
                '{"scalingMetric": "httpRequestsConcurrency", "target": 10}',
            )
        )
    for index, policy in enumerate(policies):
        if policy.scaling_metric in (p.scaling_metric for p in policies[:index]):
            problems.append(
                FieldProblem(
                    (*loc, "policies", index, "scalingMetric"),
                    f"'{policy.scaling_metric}' has a policy already",
                )
            )
    minimum, maximum = stored.min_replica_count, stored.max_replica_count
    if maximum is None:
        problems.append(
            FieldProblem(
                (*loc, "maxReplicaCount"),
                "is required when autoscaling is enabled (or maxCount on a policy)",
            )
        )
    elif minimum is not None and minimum > maximum:
        field = "policies" if given.min_replica_count is None else "minReplicaCount"
        problems.append(
            FieldProblem(
                (*loc, field),
                f"the fewest replicas ({minimum}) are more than the most ({maximum})",
            )
        )
    return problems


def scales_to_zero(runtime: dict[str, Any]) -> bool:
    """Whether a stored runtime has a group the autoscaler may take to zero replicas."""
    for group in runtime.get("containerGroups") or []:
        scaling = group.get("autoscaling") or {}
        if scaling.get("enabled") and scaling.get("minReplicaCount") == 0:
            return True
    return False
