"""The local runtime: containers on one Docker Engine API (Docker, or `podman system service`).

runtime.py         LocalRuntime: the `Runtime` protocol (supervisors, halt, remove, logs)
supervisor.py      LocalSupervisor: reconcile, restart with backoff, probe, report
replica.py         what a supervisor remembers of one replica, and its status
probes.py          HTTP/TCP/exec probes and their Kubernetes timing rules
containers.py      Docker create-configs (env, secrets, ports, limits, sidecar networking)
naming.py          deterministic names and labels
engine.py          the Docker API calls, with errors classified
logstream.py       decoding of multiplexed, timestamped log streams
logs.py            a workload's logs: snapshot or follow
podman_service.py  a `podman system service` of our own
"""

from runtimes.local.podman_service import PodmanService, docker_endpoint
from runtimes.local.runtime import LocalRuntime
from runtimes.local.supervisor import LocalSupervisor

__all__ = ["LocalRuntime", "LocalSupervisor", "PodmanService", "docker_endpoint"]
