"""Our probes as Kubernetes probes: the kubelet runs them, not us. Pure functions."""

from __future__ import annotations

from typing import Any

from models.plan import ContainerPlan
from models.spec import Probe


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
