"""Autoscaling settings of a container group, in both shapes the public API's clients send.

The older shape puts the replica bounds on each policy (`minCount`, `maxCount`); the newer one
hoists them onto `autoscaling` (`minReplicaCount`, `maxReplicaCount`). Both are accepted; the
server stores and shows the newer one (`Autoscaling.hoisted`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from models.common import CamelModel, InputModel

ScalingMetric = Literal["httpRequestsConcurrency", "cpuAverageUtilization"]
MAX_REPLICAS = 50
DEFAULT_MIN_REPLICAS = 1

_METRIC_DOC = (
    "`httpRequestsConcurrency`: calls in flight per replica, as the gateway sees them (the "
    "default); `cpuAverageUtilization`: mean CPU use of the replicas, in percent of their limit."
)
_TARGET_DOC = "The value of the metric per replica to hold: calls in flight, or a CPU percentage."


class ScalingPolicy(InputModel):
    scaling_metric: ScalingMetric = Field("httpRequestsConcurrency", description=_METRIC_DOC)
    target: float = Field(gt=0, le=100_000, description=_TARGET_DOC, examples=[10])
    min_count: int | None = Field(
        None, ge=0, le=MAX_REPLICAS, description="Older shape of `autoscaling.minReplicaCount`."
    )
    max_count: int | None = Field(
        None, ge=1, le=MAX_REPLICAS, description="Older shape of `autoscaling.maxReplicaCount`."
    )
    priority: int | None = Field(
        None, ge=0, le=1000, description="Orders policies; the lowest number is considered first."
    )


class Autoscaling(InputModel):
    """Replicas follow the load between the bounds; excludes `replicaCount`. The group starts
    with `minReplicaCount` replicas (at least one); then the autoscaler sets the count from the
    policy with the lowest `priority`, down to zero after an idle window if
    `minReplicaCount` is 0 (the gateway holds the next call while a replica starts)."""

    enabled: bool = True
    min_replica_count: int | None = Field(
        None,
        ge=0,
        le=MAX_REPLICAS,
        description="Fewest replicas (0: scale to zero when idle). Default: the policies' "
        "smallest `minCount`, else 1.",
    )
    max_replica_count: int | None = Field(
        None,
        ge=1,
        le=MAX_REPLICAS,
        description="Most replicas; required when enabled (or `maxCount` on a policy).",
    )
    policies: list[ScalingPolicy] = Field(default_factory=list, max_length=8)

    def hoisted(self) -> Autoscaling:
        """The stored shape: bounds on `autoscaling` (given there, else the policies' smallest
        `minCount`, else 1, and their largest `maxCount`), none on the policies."""
        mins = [p.min_count for p in self.policies if p.min_count is not None]
        maxes = [p.max_count for p in self.policies if p.max_count is not None]
        minimum = self.min_replica_count
        if minimum is None:
            minimum = min(mins) if mins else DEFAULT_MIN_REPLICAS
        maximum = self.max_replica_count
        if maximum is None and maxes:
            maximum = max(maxes)
        return Autoscaling(
            enabled=self.enabled,
            min_replica_count=minimum,
            max_replica_count=maximum,
            policies=[
                ScalingPolicy(scaling_metric=p.scaling_metric, target=p.target, priority=p.priority)
                for p in self.policies
            ],
        )


AUTOSCALING_EXAMPLE = {
    "enabled": True,
    "minReplicaCount": 1,
    "maxReplicaCount": 5,
    "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 10}],
}


class ScalingPolicyPublic(CamelModel):
    scaling_metric: ScalingMetric
    target: float
    priority: int | None


class AutoscalingPublic(CamelModel):
    """The settings as stored: replica bounds on `autoscaling`, never on a policy."""

    enabled: bool
    min_replica_count: int | None
    max_replica_count: int | None
    policies: list[ScalingPolicyPublic]
