"""The Kubernetes runtime: Deployments, a Service and a Secret per workload (see `runtime`)."""

from runtimes.kubernetes.client import TimeoutApiClient, load_configuration
from runtimes.kubernetes.runtime import KubernetesRuntime
from runtimes.kubernetes.supervisor import KubernetesSupervisor

__all__ = ["KubernetesRuntime", "KubernetesSupervisor", "TimeoutApiClient", "load_configuration"]
