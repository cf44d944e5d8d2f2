"""CPU use of a workload's pods from the metrics API, in percent of their CPU limit.

The metrics API (`metrics.k8s.io/v1beta1`, served by metrics-server or any adapter that
implements it) answers a `PodMetrics` per pod: each container's CPU use as a quantity,
averaged by the kubelet over its own short window, with the pod's labels. A pod's figure is
the sum of its containers' use over the sum of their CPU limits (every container runs with a
limit, `services/limits.py`), as the HorizontalPodAutoscaler sums over a pod's containers
(it divides by requests; ours equal the limits). Only running pods with a limit and a
reading count; a group's figure is the mean of its pods'. A cluster without the metrics API
answers nothing, and a group scaled on CPU then keeps its count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from runtimes.base import LABEL_GROUP

_QUANTITY = re.compile(r"^([0-9.]+)([numk]?)$")
_SCALE = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3}


def cpu_cores(quantity: Any) -> float | None:
    """A CPU quantity (`250m`, `0.5`, `123456789n`) in cores; None if it is not one."""
    found = _QUANTITY.match(str(quantity).strip())
    if found is None:
        return None
    try:
        return float(found[1]) * _SCALE[found[2]]
    except ValueError:
        return None


def _summed(values: Iterable[Any]) -> float | None:
    cores = [cpu_cores(value) for value in values]
    return sum(c for c in cores if c is not None) if any(c is not None for c in cores) else None


def utilization(pods: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> dict[str, float]:
    """Group name -> mean CPU use of its running pods, in percent of their limits."""
    used = {
        item["metadata"]["name"]: _summed(
            (c.get("usage") or {}).get("cpu") for c in item.get("containers") or []
        )
        for item in metrics
    }
    by_group: dict[str, list[float]] = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        if (pod.get("status") or {}).get("phase") != "Running" or used.get(name) is None:
            continue
        limit = _summed(
            ((c.get("resources") or {}).get("limits") or {}).get("cpu")
            for c in (pod.get("spec") or {}).get("containers") or []
        )
        if not limit:
            continue
        group = (pod["metadata"].get("labels") or {}).get(LABEL_GROUP, "default")
        by_group.setdefault(group, []).append(used[name] / limit * 100)  # type: ignore[operator]
    return {group: sum(values) / len(values) for group, values in by_group.items()}
