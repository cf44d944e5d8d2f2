"""Our own `podman system service`: starts, answers the Docker API, stops and cleans up."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from runtimes.errors import RuntimeUnavailableError
from runtimes.local.podman_service import PodmanService, answers, docker_endpoint
from runtimes.local.runtime import LocalRuntime


async def test_service_serves_the_docker_api_until_stopped() -> None:
    with tempfile.TemporaryDirectory(prefix="wapi-svc-") as directory:
        socket_path = Path(directory) / "api.sock"
        with docker_endpoint(None, Path(directory)) as url:
            assert url.startswith("unix://") and url.endswith("/podman/docker.sock")
            runtime = LocalRuntime(url)
            try:
                await runtime.ping()
            finally:
                await runtime.close()
        assert not answers(Path(url.removeprefix("unix://")))

        service = PodmanService(socket_path)
        service.start()
        assert answers(socket_path)
        service.stop()
        service.stop()  # idempotent
        assert not socket_path.exists()


def test_an_explicit_docker_host_wins(tmp_path: Path) -> None:
    with docker_endpoint("tcp://127.0.0.2:2375", tmp_path) as url:
        assert url == "tcp://127.0.0.2:2375"
    assert list(tmp_path.iterdir()) == []  # no service was started


def test_missing_podman_is_a_clear_error(tmp_path: Path) -> None:
    service = PodmanService(tmp_path / "s.sock", podman="wapi-no-such-podman")
    with pytest.raises(RuntimeUnavailableError, match="wapi-no-such-podman' is not installed"):
        service.start()
