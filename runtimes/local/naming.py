"""Deterministic container names and labels, so a retried activity adopts what already exists.

A replica is `wapi-<workload>-<group>-<index>-g<generation>`; each of its containers appends its
own name. Labels carry the same facts unmangled, and they are what lookups filter on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runtimes.base import (
    LABEL_CONTAINER,
    LABEL_GENERATION,
    LABEL_GROUP,
    LABEL_MANAGED,
    LABEL_REPLICA,
    LABEL_WORKLOAD,
)

# Docker names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*; ids and DNS labels already fit, but a caller
# could pass anything, and a bad name would fail only at create time.
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_.-]")


def _safe(part: str) -> str:
    return _NOT_NAME.sub("-", part)


@dataclass(frozen=True, order=True)
class ContainerKey:
    """Where a container belongs: workload, generation, group, replica index, container name."""

    workload_id: str
    generation: int
    group: str
    index: int
    container: str

    @property
    def replica(self) -> ReplicaKey:
        return ReplicaKey(self.workload_id, self.generation, self.group, self.index)

    @property
    def name(self) -> str:
        return f"{self.replica.name}-{_safe(self.container)}"

    def labels(self) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_WORKLOAD: self.workload_id,
            LABEL_GENERATION: str(self.generation),
            LABEL_GROUP: self.group,
            LABEL_REPLICA: str(self.index),
            LABEL_CONTAINER: self.container,
        }

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> ContainerKey | None:
        """The key a container was created with, or None if it is not one of ours."""
        try:
            return cls(
                workload_id=labels[LABEL_WORKLOAD],
                generation=int(labels[LABEL_GENERATION]),
                group=labels[LABEL_GROUP],
                index=int(labels[LABEL_REPLICA]),
                container=labels[LABEL_CONTAINER],
            )
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True, order=True)
class ReplicaKey:
    workload_id: str
    generation: int
    group: str
    index: int

    @property
    def name(self) -> str:
        return f"wapi-{_safe(self.workload_id)}-{_safe(self.group)}-{self.index}-g{self.generation}"

    def container(self, name: str) -> ContainerKey:
        return ContainerKey(self.workload_id, self.generation, self.group, self.index, name)


def workload_labels(workload_id: str) -> dict[str, str]:
    """The labels of what belongs to a workload but no replica (its network)."""
    return {LABEL_MANAGED: "true", LABEL_WORKLOAD: workload_id}


def workload_filter(workload_id: str) -> dict[str, list[str]]:
    """A Docker list filter for every container of one workload."""
    return {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_WORKLOAD}={workload_id}"]}


def network_name(workload_id: str) -> str:
    """The bridge network all primaries of one workload join."""
    return f"wapi-{_safe(workload_id)}"
