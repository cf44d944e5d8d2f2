"""A Kubernetes API emulator (kmock) per test, and a runtime pointed at it over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import kmock
import pytest
from kubernetes import client as k8s

from runtimes.base import RestartPolicy
from runtimes.kubernetes import KubernetesRuntime
from tests.runtimes.kubernetes.cluster import NAMESPACE, RESOURCES
from tests.runtimes.kubernetes.emulator import ApiServer


@pytest.fixture
async def cluster() -> AsyncIterator[ApiServer]:
    """An empty emulated cluster on a random local port (`cluster.url`)."""
    async with ApiServer() as emulator, kmock.Server(emulator):
        # The emulator only lists kinds it knows of; a real API server knows them all.
        for resource, kind in RESOURCES.items():
            emulator.resources[resource] = kmock.ResourceInfo(namespaced=True, kind=kind)
        yield emulator


def configuration_for(url: str) -> k8s.Configuration:
    configuration = k8s.Configuration(host=url.rstrip("/"))
    configuration.retries = 0  # fail fast in tests; production keeps urllib3's few retries
    return configuration


@pytest.fixture
async def runtime(cluster: kmock.KubernetesEmulator) -> AsyncIterator[KubernetesRuntime]:
    runtime = KubernetesRuntime(
        NAMESPACE,
        configuration_for(str(cluster.url)),
        RestartPolicy(crash_loop_limit=3),
        request_timeout=5,
    )
    yield runtime
    await runtime.close()
