"""GPU groups on Kubernetes: the device-plugin resource, the nodes with the bundle's GPU
product, an optional RuntimeClass, shared memory, and rollouts that need no spare GPU.

Bundles name a GPU type (`h100`, `a100-80gb`); nodes carry the product as a label (NVIDIA's
GPU feature discovery sets `nvidia.com/gpu.product`, e.g. `NVIDIA-H100-80GB-HBM3`). Settings
map each type to the label values that count as it; a type without an entry must match the
label value exactly, so an "8x H100" bundle can never land on T4 nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.plan import GroupPlan

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
SHM_VOLUME = "dshm"
_DEFAULT_SHM_BYTES = 2**30


@dataclass(frozen=True)
class ClusterOptions:
    """How this cluster labels and runs GPU nodes (WAPI_KUBERNETES_GPU_* settings)."""

    gpu_product_label: str = GPU_PRODUCT_LABEL
    gpu_products: Mapping[str, Sequence[str]] = field(default_factory=dict)
    gpu_runtime_class: str | None = None


def uses_gpu(group: GroupPlan) -> bool:
    return any(container.gpu_count > 0 for container in group.containers)


def pod_settings(group: GroupPlan, options: ClusterOptions) -> dict[str, Any]:
    """Pod spec fields of a GPU group (empty for a CPU group)."""
    if not uses_gpu(group):
        return {}
    settings: dict[str, Any] = {
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        # Model servers share tensors between processes through /dev/shm; the runtime's
        # default is 64 MiB. Memory-backed, so it counts against the memory limit.
        "volumes": [
            {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": _shm(group)}}
        ],
    }
    types = sorted({c.gpu_type for c in group.containers if c.gpu_count > 0 and c.gpu_type})
    if types:
        values = sorted({v for t in types for v in options.gpu_products.get(t) or [t]})
        term = {"key": options.gpu_product_label, "operator": "In", "values": values}
        settings["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [term]}]
                }
            }
        }
    if options.gpu_runtime_class:
        settings["runtimeClassName"] = options.gpu_runtime_class
    return settings


def shm_mount() -> dict[str, Any]:
    return {"name": SHM_VOLUME, "mountPath": "/dev/shm"}


def rollout_strategy(group: GroupPlan) -> dict[str, Any]:
    """GPU groups replace a pod before starting the next (no spare GPU needed); others surge."""
    if uses_gpu(group):
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}


def _shm(group: GroupPlan) -> str:
    """Half the primary's memory limit (1 GiB without one), in whole MiB."""
    memory = group.primary.memory_bytes
    size = memory // 2 if memory else _DEFAULT_SHM_BYTES
    return f"{max(1, size // 2**20)}Mi"
