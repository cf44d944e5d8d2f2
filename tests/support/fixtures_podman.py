"""Session fixtures for real containers: a Podman API service and the offline test images.

`docker_url` is a Docker Engine API URL for the whole session: `WAPI_TEST_DOCKER_URL` if set
(e.g. a real Docker), otherwise a `podman system service` started here and stopped at the end.
Tests never skip for lack of an engine: CI must run real containers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtimes.errors import RuntimeUnavailableError
from runtimes.local.demo_image import build_demo_image
from runtimes.local.podman_service import PodmanService


@pytest.fixture(scope="session")
def docker_url() -> Iterator[str]:
    if url := os.environ.get("WAPI_TEST_DOCKER_URL"):
        yield url
        return
    if shutil.which("podman") is None:
        pytest.fail(
            "podman is not installed: tests run real containers through `podman system "
            "service` (`make test` installs podman and runc), or set WAPI_TEST_DOCKER_URL",
            pytrace=False,
        )
    # Not pytest's tmp_path: Unix socket paths must stay under 108 bytes.
    directory = Path(tempfile.mkdtemp(prefix="wapi-podman-"))
    service = PodmanService(directory / "docker.sock")
    try:
        service.start()
    except RuntimeUnavailableError as error:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(str(error), pytrace=False)
    try:
        yield service.url
    finally:
        service.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def podman_log(docker_url: str) -> Path | None:
    """The log file of the Podman service started above (None with WAPI_TEST_DOCKER_URL)."""
    if os.environ.get("WAPI_TEST_DOCKER_URL"):
        return None
    return PodmanService(Path(docker_url.removeprefix("unix://"))).log_path


@pytest.fixture(scope="session")
async def test_image(docker_url: str) -> str:
    """Reference of the busybox demo image (see deploy/local/demo-image/README.md)."""
    return await build_demo_image(docker_url)
