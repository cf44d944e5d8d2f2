"""The Kubernetes runtime: Deployments, a Service and a Secret per workload (see `runtime`)."""

from workload_api.runtimes.kubernetes.client import TimeoutApiClient, load_configuration
from workload_api.runtimes.kubernetes.runtime import KubernetesRuntime
from workload_api.runtimes.kubernetes.supervisor import KubernetesSupervisor

__all__ = ["KubernetesRuntime", "KubernetesSupervisor", "TimeoutApiClient", "load_configuration"]
