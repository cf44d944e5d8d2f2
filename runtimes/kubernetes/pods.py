"""Reading pods: what the kubelet reports, turned into replica status and failures.

The kubelet pulls images, starts containers, runs probes and restarts crashed containers;
we only read its report (pod phase, container states, the Ready condition). Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from models.status import ReplicaState
from runtimes.base import LABEL_GENERATION, LABEL_GROUP, ReplicaStatus
from runtimes.output import REASON_LINE_BYTES, clip

# A registry 5xx, a rate limit or a slow mirror fail a pull too: the kubelet backs off and
# retries, and so do we, until the ready timeout. Only a malformed name never gets better.
PULL_RETRY_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff"})
IMAGE_REASONS = frozenset({"InvalidImageName", "ErrImageNeverPull"})
START_REASONS = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
CRASH_LOOP = "CrashLoopBackOff"


@dataclass(frozen=True)
class PodProblem:
    """Why a pod of the current generation cannot run."""

    kind: Literal["image", "start", "crash_loop"]
    pod: str
    container: str
    message: str


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def name(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["name"])


def group(pod: dict[str, Any]) -> str:
    return str((pod["metadata"].get("labels") or {}).get(LABEL_GROUP, ""))


def generation(pod: dict[str, Any]) -> int:
    try:
        return int((pod["metadata"].get("labels") or {}).get(LABEL_GENERATION, 0))
    except ValueError:
        return 0


def creation_key(pod: dict[str, Any]) -> tuple[str, str]:
    """Oldest first; RFC 3339 UTC timestamps sort as strings."""
    return (str(pod["metadata"].get("creationTimestamp") or ""), name(pod))


def _status(pod: dict[str, Any]) -> dict[str, Any]:
    return pod.get("status") or {}


def container_statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_status(pod).get("containerStatuses") or [])


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = _status(pod).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def restarts(pod: dict[str, Any]) -> int:
    return sum(int(c.get("restartCount") or 0) for c in container_statuses(pod))


def last_termination(status: dict[str, Any]) -> str:
    """'exit code 1 (Error): message' of a container's previous run, if the kubelet kept it."""
    terminated = (status.get("lastState") or {}).get("terminated") or {}
    if not terminated:
        return "no previous exit recorded"
    text = f"exit code {terminated.get('exitCode', '?')}"
    if terminated.get("reason"):
        text += f" ({terminated['reason']})"
    if terminated.get("message"):
        text += f": {clip(str(terminated['message']).strip(), REASON_LINE_BYTES)}"
    return text


def _waiting(status: dict[str, Any]) -> dict[str, Any]:
    return (status.get("state") or {}).get("waiting") or {}


def state_of(pod: dict[str, Any]) -> tuple[ReplicaState, str]:
    """Replica state and a short human message."""
    status = _status(pod)
    phase = status.get("phase") or "Pending"
    if pod["metadata"].get("deletionTimestamp"):
        return "terminated", "pod is being deleted"
    if phase == "Succeeded":
        return "terminated", "all containers exited"
    if phase == "Failed":
        return "crashed", str(status.get("reason") or status.get("message") or "pod failed")
    for container in container_statuses(pod):
        waiting = _waiting(container)
        reason = waiting.get("reason")
        if reason == CRASH_LOOP or (reason in START_REASONS):
            return "crashed", f"{container.get('name')}: {reason}"
        if reason in PULL_RETRY_REASONS:
            detail = str(waiting.get("message") or "").strip()
            return "starting", f"{container.get('name')}: {reason}, retrying: {detail}"[:500]
        if reason and reason != "ContainerCreating":
            return "starting", f"{container.get('name')}: {reason}"
    if phase == "Running":
        statuses = container_statuses(pod)
        if statuses and all(
            c.get("started") or (c.get("state") or {}).get("running") for c in statuses
        ):
            return "running", ""
        return "starting", "containers are starting"
    scheduling: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), {}
    )
    if scheduling.get("status") == "True":
        return "starting", "pulling images and creating containers"
    # The scheduler says why on the condition: "0/3 nodes are available: 3 Insufficient ...".
    reason = scheduling.get("message") or status.get("message") or "waiting to be scheduled"
    return "pending", str(reason)


def replica_status(pod: dict[str, Any], *, index: int, address: str | None) -> ReplicaStatus:
    state, message = state_of(pod)
    return ReplicaStatus(
        group=group(pod),
        index=index,
        generation=generation(pod),
        name=name(pod),
        state=state,
        ready=is_ready(pod) and state == "running",
        restarts=restarts(pod),
        started_at=parse_time(_status(pod).get("startTime")),
        address=address,
        message=message,
    )


def ready_endpoints(slices: list[dict[str, Any]], port: int) -> dict[str, str]:
    """Pod name -> `ip:port` of the ready, not terminating endpoints of EndpointSlices.

    Per the EndpointSlice API an unset `ready` means ready; `port` is the container port (the
    Service's targetPort), which is what a slice lists."""
    found: dict[str, str] = {}
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue  # FQDN slices are not pod addresses
        ipv6 = endpoint_slice.get("addressType") == "IPv6"
        for endpoint in endpoint_slice.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating") is True:
                continue
            target = endpoint.get("targetRef") or {}
            addresses = endpoint.get("addresses") or []
            if target.get("kind", "Pod") != "Pod" or not target.get("name") or not addresses:
                continue
            host = f"[{addresses[0]}]" if ipv6 else addresses[0]
            found[str(target["name"])] = f"{host}:{port}"
    return found


def problem(
    pod: dict[str, Any], images: dict[str, str], crash_loop_limit: int
) -> PodProblem | None:
    """The first reason this pod cannot run; `images` maps container name -> image."""
    for status in container_statuses(pod):
        container = str(status.get("name") or "?")
        waiting = _waiting(status)
        reason = str(waiting.get("reason") or "")
        detail = clip(str(waiting.get("message") or "").strip(), REASON_LINE_BYTES)
        suffix = f": {detail}" if detail else ""
        if reason in IMAGE_REASONS:
            image = images.get(container) or status.get("image") or "?"
            text = f"image '{image}' of container '{container}' cannot be pulled ({reason}){suffix}"
            return PodProblem("image", name(pod), container, text)
        if reason in START_REASONS:
            text = f"container '{container}' cannot start ({reason}){suffix}"
            return PodProblem("start", name(pod), container, text)
        count = int(status.get("restartCount") or 0)
        if reason == CRASH_LOOP and count >= crash_loop_limit:
            text = (
                f"container '{container}' of replica {name(pod)} keeps crashing: "
                f"restarted {count} times; last run: {last_termination(status)}"
            )
            return PodProblem("crash_loop", name(pod), container, text)
    return None
