"""Build the runtime the settings ask for."""

from __future__ import annotations

from config.settings import Settings
from runtimes.base import RestartPolicy, Runtime


def restart_policy(settings: Settings) -> RestartPolicy:
    return RestartPolicy(
        backoff_initial_seconds=settings.restart_backoff_seconds,
        backoff_max_seconds=settings.restart_backoff_max_seconds,
        crash_loop_limit=settings.crash_loop_limit,
    )


def build_runtime(settings: Settings) -> Runtime | None:
    """The configured runtime, or None for a local runtime with no engine URL (API-only use)."""
    if settings.runtime == "kubernetes":
        from runtimes.kubernetes.gpu import ClusterOptions
        from runtimes.kubernetes.runtime import KubernetesRuntime

        options = ClusterOptions(
            gpu_product_label=settings.kubernetes_gpu_product_label,
            gpu_products=settings.kubernetes_gpu_products,
            gpu_runtime_class=settings.kubernetes_gpu_runtime_class,
        )
        return KubernetesRuntime(
            namespace=settings.kubernetes_namespace,
            restart_policy=restart_policy(settings),
            options=options,
        )
    if settings.docker_url is None:
        return None
    from runtimes.local.runtime import LocalRuntime

    return LocalRuntime(
        settings.docker_url,
        restart_policy=restart_policy(settings),
        publish_ports=settings.publish_ports,
    )
